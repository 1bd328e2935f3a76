"""What the history reads (implemented by ``service.store.history_store``)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from service.ports.event_log import LogReader
from service.ports.history import LoggedEvent, LoggedLine, ObjectInfo, SocketRecord
from service.ports.operator_log import OperatorLog


class HistoryLog(LogReader, OperatorLog, Protocol):
    """The catalog and the log, read for people: by id or name, by range, and as a tail;
    and the operator's writes (``OperatorLog``)."""

    async def object_by_id(self, object_id: str) -> ObjectInfo | None:
        """The catalog entry of ``object_id`` (lowercase hex), or None."""

    async def objects_named(self, binding: str, name: str) -> list[ObjectInfo]:
        """Every catalog entry of ``binding`` made from ``name`` (one, unless the namespace's
        key changed)."""

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
        """Up to ``limit`` events of an object after ``after_seq`` up to ``until_seq``,
        recorded between ``since`` and ``until`` (inclusive, None: unbounded), of the given
        types (None: all), in seq order; or, ``descending``, the newest of them first."""

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
        """Up to ``limit`` log lines of an object after ``after`` (a (seq, id)) up to seq
        ``until_seq``, logged between ``since`` and ``until`` (inclusive, None: unbounded),
        in (seq, id) order."""

    async def settled_after(self, position: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events of every object after ``position``, in position order,
        ending before the first that another transaction still running may precede."""

    async def settled_head(self) -> int:
        """The position of the newest event no transaction still running may precede (0:
        none): tailing after it misses nothing that commits from now on."""

    async def catalog(
        self,
        *,
        binding: str | None,
        live: bool | None,
        after: tuple[str, str, str] | None,
        limit: int,
        name: str | None = None,
    ) -> list[ObjectInfo]:
        """Up to ``limit`` catalog entries (of ``binding``; owned or not; whose name holds
        ``name`` in any case), in order of binding, name (''  when none) and id, after that
        key ``after``."""

    async def open_sockets(
        self, *, tag: str | None, object_id: str | None, at: datetime | None, limit: int
    ) -> list[SocketRecord]:
        """Up to ``limit`` sockets open now (or at ``at``), carrying ``tag``, of
        ``object_id`` (None: any), oldest connection first."""

    async def sockets_by_id(
        self, object_id: str, socket_ids: Collection[str]
    ) -> list[SocketRecord]:
        """The rows of these sockets of an object, open or closed."""
