"""The flush writes a turn's lines in the transaction of its events, with the seq the turn
ended at, or none of them: under a stale epoch or seq it writes neither; beside inbox rows
(the routing flush) as beside events alone; a turn with no event keeps its lines too."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from service.ports.errors import ConflictError
from service.ports.records import InboxItem, LogLine
from tests.store.helpers import Stores, after, object_id, puts


def _line(message: str, level: int = 20) -> LogLine:
    return LogLine(at=time.time(), level=level, logger="room", message=message)


async def _rows(sql: asyncpg.Connection, target: str) -> list[tuple[int, int, str]]:
    rows = await sql.fetch(
        "SELECT seq, line, message FROM object_logs WHERE object_id = $1 ORDER BY seq, id",
        target,
    )
    return [(r["seq"], r["line"], r["message"]) for r in rows]


async def test_lines_commit_with_their_turn_or_not_at_all(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open()
    room = object_id("room")
    claim = await store.claim(room, "ROOM", "r")
    await store.append(after(claim, 0, puts(3), logs=[_line("one"), _line("two", 30)]))
    # No event: the lines take the seq the object is at.
    await store.append(after(claim, 3, [], logs=[_line("quiet")]))
    assert await _rows(sql, room) == [(3, 1, "one"), (3, 2, "two"), (3, 1, "quiet")]

    # Another node claims the object: the former owner's next turn, lines and all, is refused.
    other = await stores.open("node-b")
    await sql.execute("UPDATE nodes SET heartbeat_at = now() - interval '1 hour'")
    newer = await other.claim(room, "ROOM", "r")
    assert newer.epoch > claim.epoch
    with pytest.raises(ConflictError):
        await store.append(after(claim, 3, puts(1, "late"), logs=[_line("fenced")]))
    with pytest.raises(ConflictError):
        await store.append(after(claim, 3, [], logs=[_line("fenced, no event")]))
    assert await _rows(sql, room) == [(3, 1, "one"), (3, 2, "two"), (3, 1, "quiet")]
    await other.append(after(newer, 3, puts(1, "new"), logs=[_line("new owner")]))
    assert (await _rows(sql, room))[-1] == (4, 1, "new owner")


async def test_lines_beside_inbox_rows_go_in_the_routing_flush(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    flushes: list[int] = []
    store = await stores.open(on_flush=lambda events, _seconds: flushes.append(events))
    room, elsewhere = object_id("room"), object_id("elsewhere")
    claim = await store.claim(room, "ROOM", "r")
    await store.register(elsewhere, "ROOM", "e")
    # Queued together, they go in one flush: the one that routes, and writes lines too.
    committed = store.append(after(claim, 0, puts(1), logs=[_line("sent work elsewhere")]))
    routed = store.enqueue(InboxItem(elsewhere, "message", "s1", {"text": "hi"}))
    await asyncio.gather(committed, routed)
    assert flushes == [1]
    assert await _rows(sql, room) == [(1, 1, "sent work elsewhere")]
    assert await sql.fetchval("SELECT count(*) FROM inbox WHERE object_id = $1", elsewhere) == 1
