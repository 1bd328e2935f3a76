"""Leases in the store: who may claim an object, node ids, heartbeats, and the sweep of dead
nodes, against the real tables (each node a store of its own)."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import pytest

from service.events import types
from service.ports.errors import ConflictError, NodeIdInUseError, OwnedElsewhereError
from service.ports.records import InboxItem
from service.store.event_store import EventStore
from tests.store.helpers import Stores, after, object_id, put

CLOSE = {"code": 1006, "reason": "gone", "was_clean": False, "attempts": 0}


async def _expire(sql: asyncpg.Connection, node_id: str) -> None:
    """The node's last heartbeat is older than its lease, as the database sees it."""
    await sql.execute(
        "UPDATE nodes SET heartbeat_at = now() - lease_timeout - interval '1 second'"
        " WHERE node_id = $1",
        node_id,
    )


async def _epoch(sql: asyncpg.Connection, oid: str) -> tuple[str | None, int]:
    row = await sql.fetchrow(
        "SELECT owner_node, owner_epoch FROM objects WHERE object_id = $1", oid
    )
    return row["owner_node"], row["owner_epoch"]


async def _live(stores: Stores, node_id: str) -> EventStore:
    store = await stores.open(node_id)
    await store.join(f"{node_id}:8787", "all", 30)
    return store


async def test_a_live_owners_object_is_refused_to_others_and_its_epoch_stays(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    owner = await _live(stores, "owner")
    other = await _live(stores, "other")
    oid = object_id("room")
    claim = await owner.claim(oid, "CHAT", "room")
    for attempt in (other.claim(oid, "CHAT", "room"), other.claim_existing(oid)):
        with pytest.raises(OwnedElsewhereError) as refused:
            await attempt
        assert refused.value.owner == "owner"
    assert await _epoch(sql, oid) == ("owner", claim.epoch)
    # Its own node may claim it again (after a reset, say): that raises the epoch.
    again = await owner.claim_existing(oid)
    assert again is not None and again.epoch == claim.epoch + 1
    assert await other.claim_existing(object_id("nothing")) is None


@pytest.mark.parametrize("how", ["released", "stopped", "silent", "never joined"])
async def test_an_object_is_claimed_when_nobody_live_holds_it(
    stores: Stores, sql: asyncpg.Connection, how: str
) -> None:
    owner = await stores.open("owner")
    if how != "never joined":
        await owner.join(None, "all", 30)
    taker = await _live(stores, "taker")
    oid = object_id("room")
    claim = await owner.claim(oid, "CHAT", None)
    await owner.append(after(claim, 0, [put("a")]))
    if how == "released":
        await owner.release(oid, claim.epoch)
    elif how == "stopped":
        await owner.leave()
    elif how == "silent":
        await _expire(sql, "owner")
    taken = await taker.claim_existing(oid)
    assert taken is not None and taken.epoch > claim.epoch and taken.last_seq == 1
    # The former owner is fenced out: its next append is refused, nothing of it is written.
    with pytest.raises(ConflictError):
        await owner.append(after(claim, 1, [put("stale")]))
    assert await sql.fetchval("SELECT count(*) FROM events WHERE object_id = $1", oid) == 1


async def test_a_live_id_is_refused_and_a_dead_or_stopped_ones_is_taken_again(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    first = await _live(stores, "twin")
    with pytest.raises(NodeIdInUseError) as refused:
        await (await stores.open("twin")).join(None, "all", 30)
    assert "'twin' is held by a running node" in str(refused.value)
    assert "twin:8787" in str(refused.value)
    assert await first.heartbeat()

    await _expire(sql, "twin")
    second = await stores.open("twin")
    await second.join(None, "all", 30)
    # The earlier run learns it is over at its next heartbeat; the new one goes on.
    assert not await first.heartbeat()
    assert await second.heartbeat()
    await second.leave()
    assert not await second.heartbeat()
    third = await stores.open("twin")
    await third.join(None, "all", 30)
    assert await third.heartbeat()


async def _socket(store: EventStore, oid: str, socket_id: str) -> None:
    claim = await store.claim(oid, "CHAT", None)
    await store.append(after(claim, 0, [types.WebSocketAccepted(socket_id=socket_id)]))


async def test_one_survivor_sweeps_a_dead_node_once_closing_its_open_sockets(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    dead = await _live(stores, "dead")
    live = await _live(stores, "live")
    for n in range(3):
        await _socket(dead, object_id(f"d{n}"), f"dead-socket-{n}")
    await _socket(live, object_id("l"), "live-socket")
    # One of the dead node's sockets already has its close waiting: it gets no second one.
    await dead.enqueue(InboxItem(object_id("d0"), "close", "dead-socket-0", CLOSE))
    survivors = [await _live(stores, f"survivor-{n}") for n in range(4)]
    assert [await s.sweep_dead_node(CLOSE) for s in survivors] == [None] * 4

    await _expire(sql, "dead")
    swept = await asyncio.gather(*(s.sweep_dead_node(CLOSE) for s in survivors))
    done = [s for s in swept if s is not None]
    assert len(done) == 1
    assert (done[0].node_id, done[0].sockets, done[0].objects) == ("dead", 2, 3)
    rows = await sql.fetch("SELECT object_id, socket_id, data FROM inbox ORDER BY id")
    assert [r["socket_id"] for r in rows] == ["dead-socket-0", "dead-socket-1", "dead-socket-2"]
    assert all(json.loads(r["data"]) == CLOSE for r in rows[1:])
    row = await sql.fetchrow("SELECT swept_at, swept_by FROM nodes WHERE node_id = 'dead'")
    assert row["swept_at"] is not None and row["swept_by"].startswith("survivor-")
    # Swept once; the live node is never swept, nor a survivor itself.
    assert [await s.sweep_dead_node(CLOSE) for s in survivors] == [None] * 4
    assert not await dead.heartbeat()


async def test_polls_see_only_what_no_other_live_node_owns(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    mine = await _live(stores, "mine")
    theirs = await _live(stores, "theirs")
    soon = int(time.time() * 1000) + 1000
    for store, name in ((mine, "mine"), (theirs, "theirs")):
        claim = await store.claim(object_id(name), "CHAT", None)
        await store.append(after(claim, 0, [types.AlarmSet(scheduled_ms=soon)]))
        await store.enqueue(InboxItem(object_id(name), "message", "s", {"text": "x"}))
    await mine.enqueue(InboxItem(object_id("nobody's"), "message", "s", {"text": "x"}))
    assert sorted(await mine.objects_with_inbox()) == sorted(
        [object_id("mine"), object_id("nobody's")]
    )
    assert [o for o, _ in await mine.due_alarms(60)] == [object_id("mine")]
    # Once the other node is dead, its objects' work and alarms are anyone's.
    await _expire(sql, "theirs")
    assert object_id("theirs") in await mine.objects_with_inbox()
    assert {o for o, _ in await mine.due_alarms(60)} == {object_id("mine"), object_id("theirs")}
