"""Group commit: many appends share few transactions, and each waiter learns its own fate."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.events import types
from service.ports.errors import StoreUnavailableError
from service.ports.records import InboxItem
from tests.store.helpers import Stores, after, last_seq, object_id, put, seqs

# A test-only trigger: the database refuses any event whose data mentions the marker.
REFUSE_MARKER = """
CREATE FUNCTION refuse_marker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.data::text LIKE '%refused-by-test%' THEN
    RAISE EXCEPTION 'refused by test trigger';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_marker BEFORE INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION refuse_marker();
"""


async def test_concurrent_appends_share_few_commits_and_resolve_only_once_visible(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    objects, appends_each, batch = 50, 20, 200
    flushes: list[int] = []
    store = await stores.open(
        max_batch_events=batch, on_flush=lambda events, _seconds: flushes.append(events)
    )
    claims = [await store.claim(object_id(i), "CHAT", None) for i in range(objects)]
    # Submitted without awaiting, interleaved across objects, each one event long.
    futures = [
        (claim, n, store.append(after(claim, n, [put(f"k{n}", n)])))
        for n in range(appends_each)
        for claim in claims
    ]
    for claim, n, future in futures:
        await future
        # Resolved means committed: another connection sees the row already.
        visible = await sql.fetchval(
            "SELECT count(*) FROM events WHERE object_id = $1 AND seq = $2",
            claim.object_id,
            n + 1,
        )
        assert visible == 1, (claim.object_id, n + 1)
    assert sum(flushes) == objects * appends_each
    assert len(flushes) <= objects * appends_each // batch + 1, flushes
    for claim in claims:
        assert await seqs(sql, claim.object_id) == list(range(1, appends_each + 1))
        assert await last_seq(sql, claim.object_id) == appends_each


async def test_refused_data_fails_only_the_waiters_of_its_object(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    await sql.execute(REFUSE_MARKER)
    store = await stores.open()
    claims = [await store.claim(object_id(i), "CHAT", None) for i in range(6)]
    bad = claims[2]
    waiting = await store.enqueue(InboxItem(bad.object_id, "message", "s", {"text": "m"}))
    futures = []
    for claim in claims:
        for n in range(3):
            value = "refused-by-test" if claim is bad and n == 1 else "fine"
            consumed = [waiting] if claim is bad and n == 0 else []
            futures.append(
                store.append(after(claim, n, [put(f"k{n}", value)], consumed_inbox=consumed))
            )
    inbox = store.enqueue(InboxItem(bad.object_id, "message", "s", {"text": "still queued"}))
    results = await asyncio.gather(*futures, return_exceptions=True)
    for index, result in enumerate(results):
        claim = claims[index // 3]
        if claim is bad:
            # Its whole chain shares the commit that the database refused.
            assert isinstance(result, StoreUnavailableError), result
            assert "refused by test trigger" in str(result)
        else:
            assert result is None, (index, result)
    # The refused commit consumed nothing: the row it would have consumed is still there.
    queued = await inbox  # its own flush may land after the appends' waiters heard
    assert [i.id for i in await store.inbox(bad.object_id)] == [waiting, queued]
    assert await seqs(sql, bad.object_id) == []
    assert await last_seq(sql, bad.object_id) == 0
    for claim in claims:
        if claim is not bad:
            assert await seqs(sql, claim.object_id) == [1, 2, 3]
    # The object is not wedged: the owner may append again from what the log holds.
    await store.append(after(bad, 0, [put("again")]))
    assert await seqs(sql, bad.object_id) == [1]


async def test_a_refused_append_after_a_committed_one_fails_alone(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    await sql.execute(REFUSE_MARKER)
    store = await stores.open()
    claim = await store.claim(object_id("x"), "CHAT", None)
    await store.append(after(claim, 0, [put("a")]))
    with pytest.raises(StoreUnavailableError, match="refused by test trigger"):
        await store.append(after(claim, 1, [put("b", "refused-by-test")]))
    assert await seqs(sql, claim.object_id) == [1]


async def test_close_flushes_what_is_queued_then_refuses_more(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open()
    claim = await store.claim(object_id("closing"), "CHAT", None)
    futures = [store.append(after(claim, n, [put(f"k{n}")])) for n in range(10)]
    await store.close()
    assert all(f.done() and f.exception() is None for f in futures)  # type: ignore[attr-defined]
    assert await seqs(sql, claim.object_id) == list(range(1, 11))
    with pytest.raises(StoreUnavailableError):
        await store.append(after(claim, 10, [types.StorageCleared()]))


async def test_a_failing_flush_observer_does_not_disturb_the_commits(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    calls: list[int] = []

    def observer(events: int, _seconds: float) -> None:
        calls.append(events)
        raise RuntimeError("metrics are broken")

    store = await stores.open(on_flush=observer)
    claims = [await store.claim(object_id(f"observed.{i}"), "CHAT", None) for i in range(2)]
    await asyncio.gather(
        *(store.append(after(c, n, [put(f"k{n}")])) for n in range(5) for c in claims)
    )
    await store.append(after(claims[0], 5, [put("k5")]))
    assert await seqs(sql, claims[0].object_id) == [1, 2, 3, 4, 5, 6]
    assert await seqs(sql, claims[1].object_id) == [1, 2, 3, 4, 5]
    # One call per commit: the observer's error is not taken for a failed commit.
    assert calls == [10, 1]


async def test_waiters_learn_of_commits_in_commit_order(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    # Small batches and many appends keep two flushes in flight at once; their answers come
    # back on different connections, yet no waiter may hear of a later commit first.
    objects, appends_each = 40, 30
    store = await stores.open(max_batch_events=17)
    claims = [await store.claim(object_id(i), "CHAT", None) for i in range(objects)]
    resolved: list[tuple[str, int]] = []
    futures = []
    for n in range(appends_each):
        for claim in claims:
            future = asyncio.ensure_future(store.append(after(claim, n, [put(f"k{n}", n)])))
            future.add_done_callback(lambda _f, key=(claim.object_id, n + 1): resolved.append(key))
            futures.append(future)
        await asyncio.sleep(0)
    await asyncio.gather(*futures)
    rows = await sql.fetch(
        "SELECT object_id, seq FROM events WHERE object_id = ANY($1::text[]) ORDER BY position",
        [claim.object_id for claim in claims],
    )
    assert resolved == [(row["object_id"], row["seq"]) for row in rows]


async def test_light_load_waits_for_the_flush_in_flight_instead_of_overlapping(
    stores: Stores,
) -> None:
    # Below the overlap threshold, appends made while a flush is in flight share the next
    # flush; a second concurrent flush of one append each would double the commits.
    sizes: list[int] = []
    store = await stores.open(on_flush=lambda events, _seconds: sizes.append(events))
    claims = [await store.claim(object_id(f"light{i}"), "CHAT", None) for i in range(11)]
    first = store.append(after(claims[0], 0, [put("k")]))
    await asyncio.sleep(0)  # the first flush starts, with whatever has arrived by then
    rest = []
    for claim in claims[1:]:
        rest.append(store.append(after(claim, 0, [put("k")])))
        await asyncio.sleep(0)
    await asyncio.gather(first, *rest)
    assert len(sizes) == 2 and sum(sizes) == 11, sizes
