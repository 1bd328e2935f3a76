"""What the history reads (implemented by ``service.store.history_store``)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from service.ports.event_log import LogReader
from service.ports.history import LoggedEvent, ObjectInfo
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
    ) -> list[LoggedEvent]:
        """Up to ``limit`` events of an object after ``after_seq`` up to ``until_seq``,
        recorded between ``since`` and ``until`` (inclusive, None: unbounded), of the given
        types (None: all), in seq order."""

    async def settled_after(self, position: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events of every object after ``position``, in position order,
        ending before the first that another transaction still running may precede."""

    async def settled_head(self) -> int:
        """The position of the newest event no transaction still running may precede (0:
        none): tailing after it misses nothing that commits from now on."""
