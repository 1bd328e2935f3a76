"""What replay reads (the ``LogReader`` port): one implementation, for the node's store, which
reads on the node's pool, and for the history's, which reads on a pool of its own."""

from __future__ import annotations

import abc
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import asyncpg

from service.events import types
from service.store import history_queries, queries

T = TypeVar("T")


class LogReads(abc.ABC):
    """An object's newest snapshot at a seq, its events in a seq range a page at a time, and
    its last seq at a time; the store that inherits them says where they run (``_call``)."""

    @abc.abstractmethod
    async def _call(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``operation`` on one of the store's connections."""

    async def snapshot_at(self, object_id: str, until_seq: int) -> tuple[int, str] | None:
        """The newest snapshot at or before ``until_seq``: (seq, encoded state), or None."""
        row = await self._call(
            lambda c: c.fetchrow(queries.SNAPSHOT_AT_OR_BEFORE, object_id, until_seq)
        )
        return (row["seq"], row["state"]) if row else None

    async def events_between(
        self, object_id: str, after_seq: int, until_seq: int, page: int = 10_000
    ) -> AsyncIterator[list[types.Event]]:
        """The events after ``after_seq`` up to ``until_seq``, in order, a page at a time."""
        seq = after_seq
        while seq < until_seq:
            rows = await self._call(functools.partial(_page, object_id, seq, until_seq, page))
            if not rows:
                return  # fewer events than asked for: the caller's seq check says so
            yield [types.from_row(r["type"], r["version"], r["data"]) for r in rows]
            seq = rows[-1]["seq"]

    async def seq_at(self, object_id: str, at: datetime) -> int:
        """The last seq of an object recorded at or before ``at`` (0: none)."""
        seq: int = await self._call(
            lambda c: c.fetchval(history_queries.SEQ_AT_TIME, object_id, at)
        )
        return seq


async def _page(
    object_id: str, after: int, until: int, page: int, connection: asyncpg.Connection
) -> list[asyncpg.Record]:
    """Up to ``page`` events of an object after seq ``after``, up to ``until``."""
    rows: list[asyncpg.Record] = await connection.fetch(
        queries.EVENTS_PAGE, object_id, after, until, page
    )
    return rows
