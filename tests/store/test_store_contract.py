"""The event log contract, written once and run against every way the store is configured.

``EventLogContract`` holds the tests; each ``Test...`` subclass runs all of them against an
``EventStore`` opened with its own ``options``. One configuration batches freely, one
flushes a single append per commit (so every pipelined append crosses a commit boundary).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import asyncpg
import pytest

from service.events import snapshot, types
from service.events.fold import ObjectState, apply
from service.history import replay
from service.ports.errors import ConflictError
from service.ports.records import Append, InboxItem
from service.store.event_store import EventStore
from tests.store.helpers import Stores, after, last_seq, object_id, put, puts, seqs


class EventLogContract:
    """What every event store must do, whatever its batching."""

    options: ClassVar[dict[str, Any]] = {}

    async def open(self, stores: Stores, node_id: str = "node-a") -> EventStore:
        return await stores.open(node_id, **self.options)

    # -- append with expected version ---------------------------------------------------

    async def test_seqs_are_gapless_from_one_per_object(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        a = await store.claim(object_id("a"), "CHAT", "a")
        b = await store.claim(object_id("b"), "CHAT", None)
        # Pipelined, as the runtime does: each append expects the previous one's last seq.
        futures = [
            store.append(after(a, 0, puts(2, "x"))),
            store.append(after(b, 0, puts(1, "y"))),
            store.append(after(a, 2, puts(3, "x"))),
            store.append(after(b, 1, puts(4, "y"))),
            store.append(after(a, 5, puts(1, "z"))),
        ]
        await asyncio.gather(*futures)
        assert await seqs(sql, a.object_id) == [1, 2, 3, 4, 5, 6]
        assert await seqs(sql, b.object_id) == [1, 2, 3, 4, 5]
        assert await last_seq(sql, a.object_id) == 6
        assert await last_seq(sql, b.object_id) == 5
        history = await replay.history(store, a.object_id)
        assert history.snapshot is None and history.snapshot_seq == 0
        keys = [next(iter(e.entries)) for e in history.events if isinstance(e, types.StoragePut)]
        assert keys == ["x0", "x1", "x0", "x1", "x2", "z0"]

    async def test_an_append_at_a_stale_seq_conflicts_and_writes_nothing(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        claim = await store.claim(object_id("o"), "CHAT", None)
        await store.append(after(claim, 0, puts(2)))
        before = await sql.fetch("SELECT * FROM events ORDER BY position")
        with pytest.raises(ConflictError):
            await store.append(after(claim, 1, [put("late")]))
        with pytest.raises(ConflictError):
            await store.append(after(claim, 0, [put("late")], snapshot=(1, "{}")))
        assert await sql.fetch("SELECT * FROM events ORDER BY position") == before
        assert await last_seq(sql, claim.object_id) == 2
        assert await sql.fetchval("SELECT count(*) FROM snapshots") == 0
        await store.append(after(claim, 2, [put("next")]))
        assert await seqs(sql, claim.object_id) == [1, 2, 3]

    async def test_two_appends_at_the_same_seq_in_flight_together_one_wins(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        claim = await store.claim(object_id("race"), "CHAT", None)
        first = store.append(after(claim, 0, [put("first")]))
        second = store.append(after(claim, 0, [put("second"), put("second.2")]))
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert results[0] is None
        assert isinstance(results[1], ConflictError)
        history = await replay.history(store, claim.object_id)
        assert [list(e.entries) for e in history.events if isinstance(e, types.StoragePut)] == [
            ["first"]
        ]
        assert await last_seq(sql, claim.object_id) == 1

    async def test_a_stale_owner_epoch_is_fenced_off(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        old_node = await self.open(stores, "node-old")
        new_node = await self.open(stores, "node-new")
        old = await old_node.claim(object_id("f"), "CHAT", None)
        await old_node.append(after(old, 0, [put("a")]))
        new = await new_node.claim(object_id("f"), "CHAT", None)
        assert new.epoch == old.epoch + 1 and new.last_seq == 1
        # The old owner still believes it holds the object, and its seq is right: fenced.
        with pytest.raises(ConflictError):
            await old_node.append(after(old, 1, [put("stale")], consumed_inbox=[]))
        assert await seqs(sql, old.object_id) == [1]
        await new_node.append(after(new, 1, [put("b")]))
        assert await seqs(sql, old.object_id) == [1, 2]
        with pytest.raises(ConflictError):
            await old_node.append(after(old, 2, [put("stale again")]))
        assert await seqs(sql, old.object_id) == [1, 2]

    async def test_an_unclaimed_object_cannot_be_appended_to(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        with pytest.raises(ConflictError):
            await store.append(Append(object_id("nobody"), 1, 0, [put("x")]))
        assert await sql.fetchval("SELECT count(*) FROM events") == 0

    async def test_a_conflict_fails_only_its_own_object(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        claims = [await store.claim(object_id(i), "CHAT", None) for i in range(10)]
        await store.append(after(claims[3], 0, [put("already")]))
        futures = [store.append(after(c, 0, puts(2))) for c in claims]
        inbox = store.enqueue(InboxItem(claims[5].object_id, "message", "s1", {"text": "hi"}))
        results = await asyncio.gather(*futures, return_exceptions=True)
        for i, result in enumerate(results):
            if i == 3:
                assert isinstance(result, ConflictError)
            else:
                assert result is None, (i, result)
        assert await inbox > 0
        for i, claim in enumerate(claims):
            assert await seqs(sql, claim.object_id) == ([1] if i == 3 else [1, 2])

    # -- snapshots and history ----------------------------------------------------------

    async def test_snapshots_are_kept_two_deep_and_bound_the_history(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        claim = await store.claim(object_id("snap"), "CHAT", None)
        state = ObjectState()
        seq = 0
        for round_ in range(4):
            events = puts(3, f"r{round_}.")
            for event in events:
                apply(state, event)
            await store.append(
                after(claim, seq, events, snapshot=(seq + 3, snapshot.encode(state)))
            )
            seq += 3
        tail = [put("tail.0"), put("tail.1")]
        await store.append(after(claim, seq, tail))
        kept = await sql.fetch(
            "SELECT seq FROM snapshots WHERE object_id = $1 ORDER BY seq", claim.object_id
        )
        assert [r["seq"] for r in kept] == [9, 12]

        history = await replay.history(store, claim.object_id)
        assert history.snapshot_seq == 12
        assert history.snapshot is not None
        restored = snapshot.decode(history.snapshot)
        assert restored.seq == 12 and dict(restored.storage) == dict(state.storage)
        assert history.events == tail
        for event in history.events:
            apply(restored, event)
        assert restored.seq == 14

        at_10 = await replay.history(store, claim.object_id, until_seq=10)
        assert at_10.snapshot_seq == 9
        assert at_10.events == puts(3, "r3.")[:1]
        at_12 = await replay.history(store, claim.object_id, until_seq=12)
        assert at_12.snapshot_seq == 12 and at_12.events == []
        # Older snapshots were pruned: the past is reached by replaying from seq 1.
        at_4 = await replay.history(store, claim.object_id, until_seq=4)
        assert at_4.snapshot is None and at_4.snapshot_seq == 0
        assert at_4.events == puts(3, "r0.") + puts(3, "r1.")[:1]

    async def test_a_wake_reads_the_log_in_pages_up_to_the_claimed_seq(
        self, stores: Stores
    ) -> None:
        store = await self.open(stores)
        claim = await store.claim(object_id("paged"), "CHAT", None)
        events = puts(23, "p.")
        await store.append(after(claim, 0, events))
        pages = [page async for page in store.events_between(claim.object_id, 0, 23, page=5)]
        assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
        assert [event for page in pages for event in page] == events
        between = [page async for page in store.events_between(claim.object_id, 7, 19, page=5)]
        assert [event for page in between for event in page] == events[7:19]
        assert [page async for page in store.events_between(claim.object_id, 23, 23)] == []
        assert await store.snapshot_at(claim.object_id, 23) is None

    async def test_a_snapshot_alone_can_be_appended_as_at_hibernation(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        claim = await store.claim(object_id("h"), "CHAT", None)
        await store.append(after(claim, 0, puts(2)))
        state = ObjectState()
        for event in puts(2):
            apply(state, event)
        await store.append(after(claim, 2, [], snapshot=(2, snapshot.encode(state))))
        history = await replay.history(store, claim.object_id)
        assert history.snapshot_seq == 2 and history.events == []
        assert await last_seq(sql, claim.object_id) == 2
        newest = await store.snapshot_at(claim.object_id, 2)
        assert newest is not None and newest[0] == 2
        assert dict(snapshot.decode(newest[1]).storage) == dict(state.storage)

    async def test_replay_folds_up_to_a_seq_or_a_time_in_pages(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        claim = await store.claim(object_id("when"), "CHAT", None)
        first, second = puts(7, "a."), puts(5, "b.")
        await store.append(after(claim, 0, first))
        between = await sql.fetchval("SELECT clock_timestamp()")
        await store.append(after(claim, 7, second))
        live = ObjectState()
        for event in first + second:
            apply(live, event)
        whole = await replay.state(store, claim.object_id, page=3)
        assert (whole.state.seq, whole.snapshot_seq, whole.events) == (12, 0, 12)
        assert dict(whole.state.storage) == dict(live.storage)
        at_time = await replay.state(store, claim.object_id, until_time=between)
        assert at_time.state.seq == 7 and sorted(at_time.state.storage) == sorted(
            next(iter(e.entries)) for e in first if isinstance(e, types.StoragePut)
        )
        at_seq = await replay.state(store, claim.object_id, until_seq=9, until_time=between)
        assert at_seq.state.seq == 7  # the lower of the two bounds
        assert await store.seq_at(claim.object_id, between) == 7

    async def test_history_of_an_unknown_object_is_empty(self, stores: Stores) -> None:
        store = await self.open(stores)
        history = await replay.history(store, object_id("never"))
        assert (history.snapshot_seq, history.snapshot, history.events) == (0, None, [])

    # -- inbox --------------------------------------------------------------------------

    async def test_inbox_rows_are_consumed_by_the_append_that_records_them(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        claim = await store.claim(object_id("in"), "CHAT", None)
        other = object_id("other")
        futures = [
            store.enqueue(InboxItem(claim.object_id, "message", "s1", {"text": f"m{i}"}))
            for i in range(5)
        ]
        futures.append(store.enqueue(InboxItem(other, "close", "s9", {"code": 1000})))
        ids = await asyncio.gather(*futures)
        assert ids[:5] == sorted(ids[:5]) and len(set(ids)) == 6
        assert sorted(await store.objects_with_inbox()) == sorted([claim.object_id, other])
        items = await store.inbox(claim.object_id)
        assert [(i.id, i.kind, i.socket_id, i.data) for i in items] == [
            (ids[n], "message", "s1", {"text": f"m{n}"}) for n in range(5)
        ]
        # Several objects in one read (a wake that names them all): the same rows, by object.
        quiet = object_id("quiet")
        many = await store.inboxes([claim.object_id, other, quiet])
        assert many[claim.object_id] == items
        assert [(i.id, i.kind) for i in many[other]] == [(ids[5], "close")]
        assert many[quiet] == []

        # A conflicting append consumes nothing.
        with pytest.raises(ConflictError):
            await store.append(after(claim, 5, [put("x")], consumed_inbox=ids[:2]))
        assert len(await store.inbox(claim.object_id)) == 5

        await store.append(
            after(
                claim,
                0,
                [types.MessageReceived(socket_id="s1", text="m0")],
                consumed_inbox=ids[:2],
            )
        )
        assert [i.id for i in await store.inbox(claim.object_id)] == ids[2:5]
        # Consuming without events (the turn recorded nothing) still deletes the rows.
        await store.append(after(claim, 1, [], consumed_inbox=ids[2:5]))
        assert await store.inbox(claim.object_id) == []
        assert await store.objects_with_inbox() == [other]
        assert await seqs(sql, claim.object_id) == [1]

    # -- claims -------------------------------------------------------------------------

    async def test_claims_raise_the_epoch_and_keep_the_name(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        a = await self.open(stores, "node-a")
        b = await self.open(stores, "node-b")
        oid = object_id("claimed")
        first = await a.claim(oid, "CHAT", "lobby")
        assert (first.binding, first.name, first.epoch, first.last_seq) == ("CHAT", "lobby", 1, 0)
        await a.append(after(first, 0, puts(3)))
        second = await b.claim(oid, "OTHER", None)
        assert (second.binding, second.name, second.epoch, second.last_seq) == (
            "CHAT",
            "lobby",
            2,
            3,
        )
        third = await a.claim(oid, "CHAT", "renamed")
        assert (third.name, third.epoch) == ("lobby", 3)

        assert await a.claim_existing(object_id("unknown")) is None
        assert await sql.fetchval("SELECT count(*) FROM objects") == 1
        fourth = await b.claim_existing(oid)
        assert fourth is not None
        assert (fourth.binding, fourth.name, fourth.epoch, fourth.last_seq) == (
            "CHAT",
            "lobby",
            4,
            3,
        )
        owner = "SELECT owner_node, owner_epoch FROM objects WHERE object_id = $1"
        assert tuple(await sql.fetchrow(owner, oid)) == ("node-b", 4)

        # Only the current epoch may release; a stale holder's release changes nothing.
        await a.release(oid, third.epoch)
        assert tuple(await sql.fetchrow(owner, oid)) == ("node-b", 4)
        await b.release(oid, fourth.epoch)
        assert tuple(await sql.fetchrow(owner, oid)) == (None, 4)
        # Releasing does not lower the epoch: the next claim is still fenced past every other.
        fifth = await a.claim(oid, "CHAT", None)
        assert fifth.epoch == 5
        with pytest.raises(ConflictError):
            await b.append(after(fourth, 3, [put("after release")]))

    async def test_a_name_given_later_is_recorded(self, stores: Stores) -> None:
        store = await self.open(stores)
        oid = object_id("unnamed")
        assert (await store.claim(oid, "CHAT", None)).name is None
        assert (await store.claim(oid, "CHAT", "late-name")).name == "late-name"

    # -- alarms -------------------------------------------------------------------------

    async def test_alarm_events_project_into_the_alarms_table(
        self, stores: Stores, sql: asyncpg.Connection
    ) -> None:
        store = await self.open(stores)
        a = await store.claim(object_id("alarm-a"), "CHAT", None)
        b = await store.claim(object_id("alarm-b"), "CHAT", None)
        now_ms = int(await sql.fetchval("SELECT extract(epoch FROM now()) * 1000"))
        await asyncio.gather(
            store.append(after(a, 0, [types.AlarmSet(scheduled_ms=now_ms - 1000)])),
            store.append(after(b, 0, [types.AlarmSet(scheduled_ms=now_ms + 3_600_000)])),
        )
        assert await store.due_alarms(0) == [(a.object_id, now_ms - 1000)]
        assert [oid for oid, _ in await store.due_alarms(7200)] == [a.object_id, b.object_id]
        # Set then deleted in one append: the last word wins.
        await store.append(after(a, 1, [types.AlarmSet(scheduled_ms=now_ms), types.AlarmDeleted()]))
        await store.append(after(b, 1, [types.StorageCleared()]))
        assert await sql.fetchval("SELECT count(*) FROM alarms") == 0
        await store.append(
            after(a, 3, [types.AlarmDeleted(), types.AlarmSet(scheduled_ms=now_ms - 5)])
        )
        assert await store.due_alarms(0) == [(a.object_id, now_ms - 5)]


class TestEventStore(EventLogContract):
    """The store as a node runs it: appends from every object share commits."""


class TestEventStoreOneAppendPerCommit(EventLogContract):
    """A flush carries a single append: pipelined appends always span several commits."""

    options: ClassVar[dict[str, Any]] = {"max_batch_events": 1}


class TestEventStoreEventsByCopy(EventLogContract):
    """Every flush sends its events by COPY, as large flushes do."""

    options: ClassVar[dict[str, Any]] = {"copy_events_from": 1}
