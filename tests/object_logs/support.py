"""Helpers of the object logs tests: the journal application, and its lines as SQL reads
them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

#: The application, as ``durable serve`` takes it.
JOURNAL = str(Path(__file__).parent / "journal.py")


@dataclass(frozen=True)
class Line:
    seq: int
    id: int
    line: int
    level: int
    logger: str
    message: str


async def lines_of(sql: asyncpg.Connection, name: str) -> list[Line]:
    """The lines the object ``name`` logged, in (seq, id) order."""
    rows = await sql.fetch(
        "SELECT l.seq, l.id, l.line, l.level, l.logger, l.message"
        "  FROM object_logs AS l JOIN objects AS o USING (object_id)"
        " WHERE o.name = $1 ORDER BY l.seq, l.id",
        name,
    )
    return [Line(**dict(row)) for row in rows]


async def messages_of(sql: asyncpg.Connection, name: str) -> list[tuple[int, str]]:
    """(seq, message) of each line of the object ``name``."""
    return [(line.seq, line.message) for line in await lines_of(sql, name)]


async def last_seq(sql: asyncpg.Connection, name: str) -> int:
    seq: int = await sql.fetchval("SELECT last_seq FROM objects WHERE name = $1", name)
    return seq


async def seqs_of(sql: asyncpg.Connection, name: str, event_type: str) -> list[int]:
    """The seqs of the object's events of a type, in order."""
    rows = await sql.fetch(
        "SELECT e.seq FROM events AS e JOIN objects AS o USING (object_id)"
        " WHERE o.name = $1 AND e.type = $2 ORDER BY e.seq",
        name,
        event_type,
    )
    return [row["seq"] for row in rows]
