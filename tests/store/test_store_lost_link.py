"""A node whose link to the database breaks in the middle of a flush.

The store's pool goes through a TCP proxy that the test freezes or severs at the worst
moment: while the flush holds the positions lock, or while its COMMIT is under way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.ports.records import InboxItem
from service.store.event_store import EventStore
from tests.store.helpers import Proxy, Stores, after, object_id, put, seqs

# Test-only: an event whose data holds the marker makes its statement (or its COMMIT) slow,
# which leaves time to break the link at that point.
SLOW_INSERT = """
CREATE FUNCTION slow_marker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.data::text LIKE '%slow-marker%' THEN PERFORM pg_sleep(0.5); END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER slow_marker AFTER INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION slow_marker();
"""

SLOW_COMMIT = """
CREATE FUNCTION slow_marker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.data::text LIKE '%slow-marker%' THEN PERFORM pg_sleep(0.5); END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER slow_marker AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_marker();
"""


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[tuple[Proxy, str]]:
    link = Proxy(database_url)
    url = await link.start()
    try:
        yield link, url
    finally:
        await link.close()


async def _wait_for_query(sql: asyncpg.Connection, text: str) -> None:
    """Until some other backend is running a statement that contains ``text``."""
    for _ in range(500):
        running = await sql.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND pid <> pg_backend_pid() AND datname = current_database() AND query LIKE $1",
            f"%{text}%",
        )
        if running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no backend ran {text!r}")


async def test_a_node_that_vanishes_mid_flush_does_not_hold_up_the_others(
    stores: Stores, sql: asyncpg.Connection, proxy: tuple[Proxy, str]
) -> None:
    await sql.execute(SLOW_INSERT)
    link, url = proxy
    lost = EventStore(url, "node-lost", command_timeout=1.0, retry_seconds=5.0)
    await lost.open()
    other = await stores.open("node-other")
    try:
        mine = await lost.claim(object_id("lost"), "CHAT", None)
        theirs = await other.claim(object_id("other"), "CHAT", None)
        stuck = lost.append(after(mine, 0, [put("k", "slow-marker")]))
        await _wait_for_query(sql, "durable_flush")  # inserting the events
        # The link goes silent while the flush holds the positions lock.
        assert link.freeze() >= 1
        # Another node must still be able to commit once the lost session is reaped.
        await asyncio.wait_for(other.append(after(theirs, 0, [put("k")])), 15)
        assert await seqs(sql, theirs.object_id) == [1]
        # The lost node's own append committed once (on a retry over a new link) or not at
        # all, and its waiter knows which.
        (outcome,) = await asyncio.gather(stuck, return_exceptions=True)
        assert await seqs(sql, mine.object_id) == ([1] if outcome is None else [])
    finally:
        await lost.close()


async def test_a_commit_whose_answer_is_lost_is_reported_as_committed(
    sql: asyncpg.Connection, proxy: tuple[Proxy, str]
) -> None:
    await sql.execute(SLOW_COMMIT)
    link, url = proxy
    store = EventStore(url, "node-a", retry_seconds=10.0)
    await store.open()
    try:
        claim = await store.claim(object_id("ambiguous"), "CHAT", None)
        append = store.append(after(claim, 0, [put("k", "slow-marker")]))
        inbox = store.enqueue(InboxItem(claim.object_id, "message", "s", {"text": "once"}))
        await _wait_for_query(sql, "COMMIT")
        # The server commits, but the answer never reaches the node.
        link.sever()
        await asyncio.wait_for(append, 15)
        inbox_id = await asyncio.wait_for(inbox, 15)
        assert await seqs(sql, claim.object_id) == [1]
        rows = await sql.fetch("SELECT id FROM inbox")
        assert [r["id"] for r in rows] == [inbox_id]
    finally:
        await store.close()


async def test_a_commit_whose_connection_dies_right_after_it_is_reported_committed(
    sql: asyncpg.Connection, proxy: tuple[Proxy, str]
) -> None:
    """COMMIT answers, then the link breaks before the connection goes back to the pool:
    returning it fails, but the commit stands and must be reported as such, once."""
    link, url = proxy
    store = EventStore(url, "node-a", retry_seconds=10.0)
    await store.open()
    try:
        claim = await store.claim(object_id("released"), "CHAT", None)
        # CommandComplete of COMMIT: the server's answer, just before the pool resets the
        # connection (which then fails).
        link.cut_after = b"C\x00\x00\x00\x0bCOMMIT\x00"
        await asyncio.wait_for(store.append(after(claim, 0, [put("k", 1)])), 15)
        assert link.cut.is_set()
        # The next append, on a new link, follows the first one (no conflict, no reset).
        await asyncio.wait_for(store.append(after(claim, 1, [put("k", 2)])), 15)
        assert await seqs(sql, claim.object_id) == [1, 2]
    finally:
        await store.close()
