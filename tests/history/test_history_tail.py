"""The global tail: every object's events in the order they committed, never skipping one
that commits late."""

from __future__ import annotations

import asyncio

import asyncpg

from service.ports.history import HistoryService
from tests.store.helpers import SLOW_INSERTS, Stores, after, object_id, put, write_in_rounds

# One event written by hand, as an operator's SQL (or a writer that takes no lock) would.
INSERT = """
INSERT INTO events (object_id, seq, type, data)
VALUES ($1, $2, 'storage_put', '{"entries": {"k": 1}}')
RETURNING position
"""


async def _positions(history: HistoryService, after: int, wait_for: int = 0) -> list[int]:
    """The positions the tail returns after ``after``, once it returns ``wait_for`` or more.

    Any writing transaction of the cluster (another database's included: transaction ids
    are the cluster's) holds the tail back while it runs, so a test waits for what it
    expects instead of asking once; holding back is always allowed, skipping never.
    """
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        positions = [e.position for e in (await history.tail(after)).events]
        if len(positions) >= wait_for or asyncio.get_running_loop().time() > deadline:
            return positions
        await asyncio.sleep(0.01)


async def test_the_tail_pages_through_every_object_in_position_order(
    history: HistoryService, stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open("node-a")
    claims = [await store.claim(object_id(n), "CHAT", f"room{n}") for n in range(3)]
    for round_ in range(4):
        await asyncio.gather(
            *(store.append(after(c, round_ * 2, [put("a"), put("b")])) for c in claims)
        )

    stored = await sql.fetch("SELECT position, object_id, seq FROM events ORDER BY position")
    assert len(stored) == 24
    seen: list[tuple[int, str, int]] = []
    position = 0
    deadline = asyncio.get_running_loop().time() + 30
    while len(seen) < len(stored) and asyncio.get_running_loop().time() < deadline:
        page = await history.tail(position, limit=5)
        assert len(page.events) <= 5
        seen.extend((e.position, e.object_id, e.seq) for e in page.events)
        position = page.position
        if not page.events:
            await asyncio.sleep(0.01)
        if not page.events:
            await asyncio.sleep(0.01)
    assert seen == [tuple(r) for r in stored]
    assert position == seen[-1][0] and (await history.tail(position)).position == position
    assert (await history.tail(10**12)).events == []


async def test_a_row_that_commits_late_holds_back_the_rows_after_it(
    history: HistoryService, database_url: str, sql: asyncpg.Connection
) -> None:
    """Two transactions: one takes a position and commits late, the next commits early. The
    tail must not return the later position before the earlier one has committed."""
    settled = await sql.fetchval(INSERT, object_id("a"), 1)
    late, early = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        late_tx = late.transaction()
        await late_tx.start()
        first = await late.fetchval(INSERT, object_id("b"), 1)
        async with early.transaction():
            second = await early.fetchval(INSERT, object_id("c"), 1)
        assert settled < first < second
        visible = await sql.fetch("SELECT position FROM events ORDER BY position")
        assert [r[0] for r in visible] == [settled, second]  # the late one is not visible yet

        assert await _positions(history, 0, wait_for=1) == [settled]
        page = await history.tail(settled)
        assert (page.events, page.position) == ([], settled)

        await late_tx.commit()
        assert await _positions(history, settled, wait_for=2) == [first, second]
    finally:
        await late.close()
        await early.close()


async def test_the_tail_stops_at_the_first_unsettled_row_even_before_a_settled_one(
    history: HistoryService, database_url: str
) -> None:
    """A visible row of a young transaction comes before a visible row of an older one while
    a transaction older than the first still runs: returning the second would move a reader
    past the first, so the page ends before both."""
    oldest, running, young = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        oldest_tx, running_tx = oldest.transaction(), running.transaction()
        for connection, transaction in ((oldest, oldest_tx), (running, running_tx)):
            await transaction.start()
            await connection.fetchval("SELECT pg_current_xact_id()")  # take its id now
        async with young.transaction():
            first = await young.fetchval(INSERT, object_id("young"), 1)
        second = await oldest.fetchval(INSERT, object_id("oldest"), 1)
        await oldest_tx.commit()
        assert first < second

        assert await _positions(history, 0) == []

        third = await running.fetchval(INSERT, object_id("running"), 1)
        await running_tx.commit()
        assert await _positions(history, 0, wait_for=3) == [first, second, third]
    finally:
        for connection in (oldest, running, young):
            await connection.close()


async def _head(history: HistoryService, expected: int) -> int:
    """The head, once it reaches ``expected`` (see ``_positions`` for why a test waits)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        head = await history.head()
        assert head <= expected
        if head == expected or asyncio.get_running_loop().time() > deadline:
            return head
        await asyncio.sleep(0.01)


async def test_the_head_is_the_newest_position_no_running_transaction_may_precede(
    history: HistoryService, database_url: str, sql: asyncpg.Connection
) -> None:
    assert await history.head() == 0
    settled = await sql.fetchval(INSERT, object_id("a"), 1)
    assert await _head(history, settled) == settled
    late, early = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        late_tx = late.transaction()
        await late_tx.start()
        first = await late.fetchval(INSERT, object_id("b"), 1)
        async with early.transaction():
            second = await early.fetchval(INSERT, object_id("c"), 1)
        # The newest visible row (second) may be preceded by the late one: not the head yet.
        assert await _head(history, settled) == settled
        await late_tx.commit()
        assert await _head(history, second) == second
        assert await _positions(history, settled, wait_for=2) == [first, second]
    finally:
        await late.close()
        await early.close()


async def test_the_tail_under_concurrent_flushes_misses_nothing(
    history: HistoryService, stores: Stores, sql: asyncpg.Connection
) -> None:
    """Four nodes flush at once, each flush held open a random while after its inserts."""
    await sql.execute(SLOW_INSERTS)
    nodes = [await stores.open(f"node-{n}", max_batch_events=8) for n in range(4)]
    writers = asyncio.gather(*(write_in_rounds(store, n, 8, 25) for n, store in enumerate(nodes)))
    seen: list[tuple[int, str, int]] = []
    position = 0
    while not writers.done():
        page = await history.tail(position, limit=50)
        seen.extend((e.position, e.object_id, e.seq) for e in page.events)
        position = page.position
        await asyncio.sleep(0.001)
    await writers
    stored = await sql.fetch("SELECT position, object_id, seq FROM events ORDER BY position")
    assert len(stored) > 500
    deadline = asyncio.get_running_loop().time() + 30
    while len(seen) < len(stored) and asyncio.get_running_loop().time() < deadline:
        page = await history.tail(position, limit=50)
        seen.extend((e.position, e.object_id, e.seq) for e in page.events)
        position = page.position
        if not page.events:
            await asyncio.sleep(0.01)
    assert seen == [tuple(r) for r in stored]
