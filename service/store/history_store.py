"""The history's reads of the catalog and the log (the ``HistoryLog`` port), on a pool of their
own: an operator's long replay or a busy tail never takes a connection a node's wakes or
commits need, and a command that runs without a node opens only this. The operator's few
writes (``operator_writes``) go through it too."""

from __future__ import annotations

import json
import typing
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from service.events import types
from service.ports.history import (
    LoggedEvent,
    LoggedLine,
    ObjectInfo,
    SocketRecord,
    UnknownEvent,
)
from service.store import (
    connections,
    database_url,
    event_store,
    history_queries,
    log_reads,
    operator_writes,
)

#: Seconds the pool gets to close its connections politely before they are cut.
CLOSE_TIMEOUT = 5.0

T = TypeVar("T")

#: The event types this version knows: a row of another type is shown, not parsed.
KNOWN_TYPES = frozenset(
    model.model_fields["type"].default for model in typing.get_args(typing.get_args(types.Event)[0])
)


class HistoryStore(log_reads.LogReads):
    """Reads for the history: catalog entries, events by range, the global tail, replay."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 2,
        command_timeout: float = 30.0,
        acquire_timeout: float = 5.0,
    ) -> None:
        self.dsn = database_url.for_asyncpg(dsn)
        self._pool_size = pool_size
        self._command_timeout = command_timeout
        self._acquire_timeout = acquire_timeout
        self.health = connections.Health()
        self._pool: connections.Pool | None = None

    async def open(self) -> None:
        """Make the pool; connections open when first needed, so this works while the
        database is away, and reads then fail with StoreUnavailableError."""
        pool = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            reset=connections.keep_session,
            max_size=self._pool_size,
            command_timeout=self._command_timeout,
            timeout=self._command_timeout,
            server_settings={"application_name": "durable history"},
        )
        self._pool = connections.Pool(
            pool, "history", self.health, acquire_timeout=self._acquire_timeout
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close(CLOSE_TIMEOUT)
            self._pool = None

    # -- the catalog --------------------------------------------------------------------

    async def object_by_id(self, object_id: str) -> ObjectInfo | None:
        row = await self._call(lambda c: c.fetchrow(history_queries.OBJECT_BY_ID, object_id))
        return None if row is None else _object(row)

    async def objects_named(self, binding: str, name: str) -> list[ObjectInfo]:
        rows = await self._call(lambda c: c.fetch(history_queries.OBJECTS_NAMED, binding, name))
        return [_object(row) for row in rows]

    # -- the log, for people --------------------------------------------------------------

    async def events_in(
        self,
        object_id: str,
        *,
        after_seq: int,
        until_seq: int,
        since: datetime | None,
        until: datetime | None,
        types: Collection[str] | None,
        limit: int,
        descending: bool = False,
    ) -> list[LoggedEvent]:
        kinds = None if types is None else list(types)
        query = history_queries.EVENTS_IN_DESCENDING if descending else history_queries.EVENTS_IN
        rows = await self._call(
            lambda c: c.fetch(query, object_id, after_seq, until_seq, since, until, kinds, limit)
        )
        return [_logged(row) for row in rows]

    async def lines_in(
        self,
        object_id: str,
        *,
        after: tuple[int, int],
        until_seq: int,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[LoggedLine]:
        query = history_queries.LINES_IN
        rows = await self._call(
            lambda c: c.fetch(query, object_id, *after, until_seq, since, until, limit)
        )
        return [
            LoggedLine(
                object_id=row["object_id"],
                seq=row["seq"],
                id=row["id"],
                line=row["line"],
                logged_at=row["logged_at"],
                level=row["level"],
                logger=row["logger"],
                message=row["message"],
            )
            for row in rows
        ]

    async def settled_after(self, position: int, limit: int) -> list[LoggedEvent]:
        rows = await self._call(lambda c: c.fetch(history_queries.TAIL, position, limit))
        return [_logged(row) for row in rows]

    async def settled_head(self) -> int:
        position: int = await self._call(lambda c: c.fetchval(history_queries.HEAD))
        return position

    # -- the operator's writes ------------------------------------------------------------

    async def start_object(
        self, object_id: str, binding: str, name: str | None, first: types.Event
    ) -> None:
        await self._call(
            lambda c: operator_writes.start_object(
                c, object_id, binding, name, first, event_store.CHANNEL
            )
        )

    async def catalog(
        self,
        *,
        binding: str | None,
        live: bool | None,
        after: tuple[str, str, str] | None,
        limit: int,
        name: str | None = None,
    ) -> list[ObjectInfo]:
        key: tuple[str | None, str | None, str | None] = after or (None, None, None)
        query = history_queries.CATALOG
        rows = await self._call(lambda c: c.fetch(query, binding, live, *key, limit, name))
        return [_object(row) for row in rows]

    async def open_sockets(
        self, *, tag: str | None, object_id: str | None, at: datetime | None, limit: int
    ) -> list[SocketRecord]:
        query = history_queries.OPEN_SOCKETS
        rows = await self._call(lambda c: c.fetch(query, tag, object_id, at, limit))
        return [_socket(row) for row in rows]

    async def sockets_by_id(
        self, object_id: str, socket_ids: Collection[str]
    ) -> list[SocketRecord]:
        ids = sorted(set(socket_ids))
        rows = await self._call(lambda c: c.fetch(history_queries.SOCKETS_BY_ID, object_id, ids))
        return [_socket(row) for row in rows]

    async def _call(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        assert self._pool is not None, "HistoryStore.open() was not awaited"
        return await self._pool.run(operation)


def _object(row: asyncpg.Record) -> ObjectInfo:
    return ObjectInfo(
        object_id=row["object_id"],
        binding=row["binding"],
        name=row["name"],
        created_at=row["created_at"],
        last_seq=row["last_seq"],
        last_activity=row["updated_at"],
        owner_node=row["owner_node"],
        open_sockets=row["open_sockets"],
    )


def _socket(row: asyncpg.Record) -> SocketRecord:
    attachment = row["attachment"]
    return SocketRecord(
        object_id=row["object_id"],
        binding=row["binding"],
        name=row["name"],
        socket_id=row["socket_id"],
        tags=list(row["tags"]),
        attachment=None if attachment is None else json.loads(attachment),
        connected_at=row["connected_at"],
        last_activity_at=row["last_activity_at"],
        closed_at=row["closed_at"],
        close_code=row["close_code"],
        node=row["node"],
    )


def _logged(row: asyncpg.Record) -> LoggedEvent:
    return LoggedEvent(
        object_id=row["object_id"],
        seq=row["seq"],
        position=row["position"],
        recorded_at=row["recorded_at"],
        event=_event(row["type"], row["version"], row["data"]),
    )


def _event(type_: str, version: int, data: str) -> types.Event | UnknownEvent:
    """The event of a row; one of a type this version does not know, as it is stored."""
    if type_ in KNOWN_TYPES:
        return types.from_row(type_, version, data)
    fields: Any = json.loads(data)
    return UnknownEvent(type_, version, fields if isinstance(fields, dict) else {"data": fields})
