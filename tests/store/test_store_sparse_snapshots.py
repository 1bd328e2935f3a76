"""Snapshots kept for good: the first of each span of 10,000 seqs, besides the two
newest, so that the state at an old point of a long log folds from near it."""

from __future__ import annotations

import asyncpg

from service.events import snapshot
from service.events.fold import ObjectState, apply
from service.history import replay
from tests.store.helpers import Stores, object_id, write_with_snapshots

_KEPT = "SELECT seq FROM snapshots WHERE object_id = $1 ORDER BY seq"


async def test_the_first_snapshot_of_each_span_is_kept_with_the_two_newest(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open()
    claim = await store.claim(object_id("sparse"), "CHAT", None)
    # Appends of 150 and a snapshot every 1,000: like a node's, the snapshots land past the
    # multiples (1050, 2100, 3000, ...), so a span's first is rarely on its boundary.
    taken = await write_with_snapshots(store, claim, 22_050, batch=150, every=1000)
    assert len(taken) == 22 and taken[-2:] == [21_000, 22_050]
    kept = [r["seq"] for r in await sql.fetch(_KEPT, claim.object_id)]
    # Nothing below the first span (a fold from seq 1 is short there); the first of the
    # spans from 10,000 and from 20,000; the two newest. The other 18 were pruned.
    assert kept == [10_050, 20_100, 21_000, 22_050]

    # An old point folds from the span's snapshot, to what a fold from seq 1 gives.
    at = await replay.state(store, claim.object_id, until_seq=15_000)
    assert (at.snapshot_seq, at.events) == (10_050, 4_950)
    from_start = ObjectState()
    async for page in store.events_between(claim.object_id, 0, 15_000):
        for event in page:
            apply(from_start, event)
    assert snapshot.comparable(at.state) == snapshot.comparable(from_start)
    assert from_start.seq == 15_000 and len(from_start.storage) == 100
