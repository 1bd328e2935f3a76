"""The global position follows commit order, so a reader tailing by position skips nothing."""

from __future__ import annotations

import asyncio
import itertools
import random

import asyncpg

from service.ports.errors import ConflictError
from service.store.event_store import EventStore
from tests.store.helpers import SLOW_INSERTS, Stores, after, object_id, put, write_in_rounds

TAIL = "SELECT position, object_id, seq FROM events WHERE position > $1 ORDER BY position"


async def test_a_tailing_reader_never_skips_a_row_that_commits_late(
    stores: Stores, sql: asyncpg.Connection, database_url: str
) -> None:
    await sql.execute(SLOW_INSERTS)
    nodes = [await stores.open(f"node-{n}", max_batch_events=8) for n in range(4)]
    seen: list[tuple[int, str, int]] = []
    reader = await asyncpg.connect(database_url)
    writers = asyncio.gather(*(write_in_rounds(store, n, 8, 25) for n, store in enumerate(nodes)))
    try:
        last = 0
        while True:
            done = writers.done()
            rows = await reader.fetch(TAIL, last)
            seen.extend((r["position"], r["object_id"], r["seq"]) for r in rows)
            if rows:
                last = rows[-1]["position"]
            if done:
                break
            await asyncio.sleep(0.001)
        await writers
    finally:
        await reader.close()
    stored = await sql.fetch("SELECT position, object_id, seq FROM events ORDER BY position")
    assert len(stored) > 500
    assert seen == [tuple(r) for r in stored]
    # Each commit holds one unbroken run of positions: flushes never interleave.
    runs = await sql.fetch(
        "SELECT xmin::text AS tx, min(position) AS lo, max(position) AS hi, count(*) AS n "
        "FROM events GROUP BY xmin::text ORDER BY lo"
    )
    assert len(runs) > 20
    for run in runs:
        assert run["hi"] - run["lo"] + 1 == run["n"]
    for earlier, later in itertools.pairwise(runs):
        assert earlier["hi"] < later["lo"]


async def test_competing_nodes_keep_each_object_gapless(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    # Every node claims the same objects in turn and appends whatever it believes is next:
    # a stale writer gets ConflictError, and the log stays gapless whatever interleaving.
    nodes = [await stores.open(f"node-{n}") for n in range(3)]
    oids = [object_id(f"shared.{i}") for i in range(5)]
    committed = 0

    async def compete(store: EventStore, seed: int) -> None:
        nonlocal committed
        rng = random.Random(seed)
        for _ in range(30):
            claim = await store.claim(rng.choice(oids), "CHAT", None)
            try:
                await store.append(after(claim, claim.last_seq, [put("v", seed)] * 2))
                committed += 2
            except ConflictError:
                pass

    await asyncio.gather(*(compete(store, n) for n, store in enumerate(nodes)))
    assert committed > 0
    total = 0
    for oid in oids:
        rows = await sql.fetch("SELECT seq FROM events WHERE object_id = $1 ORDER BY seq", oid)
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
        total += len(rows)
    assert total == committed
