"""The event log the runtime runs on (implemented by ``service.store.event_store``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from service.events.types import Event
from service.ports.cluster import NodeDirectory
from service.ports.records import Append, Claim, InboxItem, PublishedMessage, RemoteOutput


class LogReader(Protocol):
    """What replay reads: snapshots, and events a page at a time."""

    async def snapshot_at(self, object_id: str, until_seq: int) -> tuple[int, str] | None:
        """The newest snapshot at or before ``until_seq``: (seq, encoded state), or None."""

    def events_between(
        self, object_id: str, after_seq: int, until_seq: int, page: int = 10_000
    ) -> AsyncIterator[list[Event]]:
        """The events after ``after_seq`` up to ``until_seq``, in order, a page at a time."""

    async def seq_at(self, object_id: str, at: datetime) -> int:
        """The last seq recorded at or before ``at`` (0: none)."""


class PublishedLog(Protocol):
    """What a resume reads: the messages an object published in a range of its log."""

    async def published_between(
        self, object_id: str, after_seq: int, until_seq: int, tags: Sequence[str], limit: int
    ) -> list[PublishedMessage]:
        """The newest ``limit`` messages published after ``after_seq`` up to ``until_seq``
        with no tag or one of ``tags``, oldest first."""


class ObjectLog(LogReader, PublishedLog, Protocol):
    """One object's log, as its activation uses it: owned, replayed, appended to."""

    def append(self, append: Append) -> Awaitable[None]: ...

    async def claim(self, object_id: str, binding: str, name: str | None) -> Claim:
        """Take the object's lease, creating it; OwnedElsewhereError if a live node has it."""

    async def claim_existing(self, object_id: str) -> Claim | None:
        """Take an existing object's lease (None: no such object); OwnedElsewhereError if a
        live node has it."""

    async def release(self, object_id: str, epoch: int) -> None: ...

    async def register(self, object_id: str, binding: str, name: str | None) -> None:
        """Write the object's catalog row, owned by nobody, unless it exists: a node that
        runs no objects sends work for a new one to a host, which must find it there."""

    async def inbox(self, object_id: str) -> list[InboxItem]: ...


class EventLog(ObjectLog, NodeDirectory, Protocol):
    """The event store (``service.store.event_store.EventStore``): every object's log, and
    what the node does with it as a whole (the inbox, alarms, notifications, its row)."""

    node_id: str

    async def inboxes(self, object_ids: Sequence[str]) -> dict[str, list[InboxItem]]:
        """The pending inbox rows of each of these objects, oldest first (one read for a
        wake that names several)."""

    def enqueue(self, item: InboxItem) -> Awaitable[int]:
        """Write an inbox row; the flush that commits it wakes the object's live owner (or
        this node, when nobody live owns it)."""

    async def objects_with_inbox(self, limit: int = 1000) -> list[str]:
        """Objects with inbox rows that no live node but this one owns."""

    async def nudge(self, object_ids: list[str]) -> None:
        """Wake the live owners of these objects now (this node for those nobody owns)."""

    async def wake_on(self, node_id: str, object_ids: list[str], *, draining: bool = False) -> bool:
        """Wake the live owners of these objects, or ``node_id`` for those nobody live owns;
        False if ``node_id`` is not live, or is draining (unless ``draining``: it was
        chosen knowing that)."""

    async def stale_sockets(self) -> list[tuple[str, str]]: ...

    async def outbox_after(
        self, position: int, limit: int, *, delivered: int = 0
    ) -> list[RemoteOutput]:
        """This node's outbox rows (output for the sockets it holds, from objects other
        nodes run) after ``position``, oldest first, at most ``limit``; the rows up to
        ``delivered`` (at most ``position``) are deleted by the same statement."""

    async def outbox_delivered(self, position: int) -> None:
        """Delete this node's outbox rows up to ``position``: they were delivered."""

    def unavailable(self) -> str | None:
        """Why the database is taken to be away (it refused connections), or None."""

    async def ping(self) -> None:
        """Raise StoreUnavailableError unless the database answers."""

    async def due_alarms(
        self, horizon_seconds: float, limit: int = 100
    ) -> list[tuple[str, int]]: ...

    def listen(
        self,
        on_wake: Callable[[list[str] | None], None],
        on_connect: Callable[[], Awaitable[None]],
        *,
        on_outbox: Callable[[int], None] | None = None,
        probe_interval: float = 5.0,
    ) -> Any: ...
