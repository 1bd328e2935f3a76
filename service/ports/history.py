"""The history as its front ends see it (the ``durable`` history commands, an admin API).

Reading the log is the history's business: an object's events, its state at any seq or time
through the one replay, and the global tail. Front ends name an object as the user does,
``BINDING/NAME`` or its 64-hex id, and get plain records back, never rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from service.events.fold import ObjectState, SocketState
from service.events.types import Event

#: Told how far a long replay has come: (events folded so far, events to fold in all).
Progress = Callable[[int, int], None]

#: Where in an object's history: a seq (the state after that event) or an instant.
Point = int | datetime


class HistoryError(Exception):
    """Something the history cannot answer as asked; the message says what to ask instead."""


class UnknownObjectError(HistoryError, LookupError):
    """No object goes by that id or ``BINDING/NAME``, or the reference is malformed."""


class AmbiguousObjectError(HistoryError, LookupError):
    """A ``BINDING/NAME`` names more than one object (its namespace key changed): give the id."""


class OutOfHistoryError(HistoryError, ValueError):
    """A seq or time outside an object's log: before its first event or past its last."""


class ObjectExistsError(HistoryError):
    """An object to be made (a fork) exists already, with events of its own."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object of the catalog, as ``durable objects`` lists it."""

    object_id: str
    binding: str
    #: The name given to ``id_from_name``, if any.
    name: str | None
    created_at: datetime
    #: seq of its newest event: how many events its log holds.
    last_seq: int
    #: When the catalog row last changed (a claim, a commit, a release).
    last_activity: datetime
    #: The node running it now; None while it hibernates.
    owner_node: str | None
    #: Its sockets still open (hibernated ones included).
    open_sockets: int

    @property
    def live(self) -> bool:
        return self.owner_node is not None


@dataclass(frozen=True, slots=True)
class ObjectPage:
    """A page of the catalog, ordered by binding, name and id."""

    objects: list[ObjectInfo]
    #: Pass as ``after`` for the next page; None when this page ends the catalog.
    cursor: tuple[str, str, str] | None


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event of a type this version of the service does not know (a newer node wrote it):
    shown as it is stored, never folded (replay refuses a log it cannot fold)."""

    type: str
    version: int
    #: The row's ``data``: the event's fields.
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event as it stands in the log."""

    object_id: str
    seq: int
    #: Global order of the log (the tail's cursor).
    position: int
    #: When its flush ran: every event of one commit shares it.
    recorded_at: datetime
    event: Event | UnknownEvent


@dataclass(frozen=True, slots=True)
class SocketRecord:
    """One row of the presence projection (``websockets``): a socket, open or closed.

    Its tags never change; ``attachment`` (encoded, see ``service.events.values``) and
    ``last_activity_at`` are the latest, whatever time the row was asked about.
    """

    object_id: str
    binding: str
    name: str | None
    socket_id: str
    tags: list[str]
    attachment: Any
    connected_at: datetime
    last_activity_at: datetime
    #: None while the socket is open.
    closed_at: datetime | None
    close_code: int | None
    #: The node whose gateway holds (or held) the connection.
    node: str | None


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of an object's events, in seq order (newest first when asked descending)."""

    events: list[LoggedEvent]
    #: Pass as ``after`` for the next page (in the same order); None when this page ends
    #: the range.
    cursor: int | None


@dataclass(frozen=True, slots=True)
class TailPage:
    """Events of every object that committed after a position, in position order."""

    events: list[LoggedEvent]
    #: Pass as ``after`` for the next page (the last position returned, or the one given).
    position: int


@dataclass(frozen=True, slots=True)
class LoggedLine:
    """A line an object's code logged in one of its turns (``object_logs``)."""

    object_id: str
    #: The turn's: the object's seq when it ended (its last event, or the seq it was at).
    seq: int
    #: With ``seq``, the lines' order, which is commit order (the reader's cursor).
    id: int
    #: Its place in its turn, from 1.
    line: int
    logged_at: datetime
    #: The logging level's number (20: INFO).
    level: int
    logger: str
    #: The formatted message, with its exception's traceback if any.
    message: str


@dataclass(frozen=True, slots=True)
class LogPage:
    """A page of an object's log lines, in (seq, id) order."""

    lines: list[LoggedLine]
    #: Pass as ``after`` for the next page; None when this page ends the range.
    cursor: tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class StateAt:
    """An object's state after one of its events, rebuilt by the one replay."""

    object: ObjectInfo
    #: The event the state is after (0: before its first).
    seq: int
    state: ObjectState
    #: The snapshot the replay started from (0: none) and how many events it folded.
    snapshot_seq: int
    folded: int


@dataclass(frozen=True, slots=True)
class Forked:
    """A new object made from another's state at one of its events (``durable fork``)."""

    object_id: str
    binding: str
    name: str
    #: The object it was forked from, and the event whose state it starts with.
    source: ObjectInfo
    seq: int
    #: Who made it (``user@host``).
    by: str
    #: What its first event copied: storage keys, and whether it has an alarm.
    keys: int
    alarm_ms: int | None


@dataclass(frozen=True, slots=True)
class KeyChange:
    """A storage key that differs between two points; values are encoded."""

    key: str
    change: Literal["added", "removed", "changed"]
    #: None for an added key (and for a removed key's ``new``).
    old: Any = None
    new: Any = None


@dataclass(frozen=True, slots=True)
class SocketChange:
    """A socket open at both points whose tags, attachment or closing differ."""

    socket_id: str
    before: SocketState
    after: SocketState


@dataclass(frozen=True, slots=True)
class FieldChange:
    """An object-wide setting that differs: ``auto_response`` (request, response),
    ``event_timeout_ms``, ``alarm_ms`` (epoch milliseconds) or ``messages`` (the count of
    inbound messages recorded)."""

    name: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class StateDiff:
    """What changed in an object's state from one point to another."""

    storage: list[KeyChange] = field(default_factory=list)
    #: Open at the second point only, and at the first only.
    sockets_opened: list[SocketState] = field(default_factory=list)
    sockets_closed: list[SocketState] = field(default_factory=list)
    sockets_changed: list[SocketChange] = field(default_factory=list)
    fields: list[FieldChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.storage
            or self.sockets_opened
            or self.sockets_closed
            or self.sockets_changed
            or self.fields
        )


@dataclass(frozen=True, slots=True)
class DiffBetween:
    """An object's state at two points and what changed from the first to the second."""

    object: ObjectInfo
    #: The seqs the two states are after (a time resolves to the last event at it).
    from_seq: int
    to_seq: int
    diff: StateDiff


class HistoryService(Protocol):
    """The history's interface to its front ends (implemented by ``service.history.service``).

    ``ref`` is ``BINDING/NAME`` or a 64-hex id; an unknown one raises UnknownObjectError.
    A database outage raises ``service.ports.errors.StoreUnavailableError``.
    """

    async def find(self, ref: str) -> ObjectInfo:
        """The object ``ref`` names."""

    async def events(
        self,
        ref: str,
        *,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        types: Collection[str] | None = None,
        after: int | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> EventPage:
        """Its events from ``since`` to ``until`` (a seq or a time, both inclusive) of the
        given types, ``limit`` at most, past the cursor ``after`` of the previous page: in
        seq order, or newest first when ``descending`` (a page then holds the events just
        below its cursor, and the first page the newest)."""

    async def logs(
        self,
        ref: str,
        *,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        after: tuple[int, int] | None = None,
        limit: int = 100,
    ) -> LogPage:
        """What its code logged, in the turns from seq ``since`` to seq ``until`` (or from
        time to time: when each line was logged; both inclusive), ``limit`` lines at most,
        after the cursor ``after`` of the previous page."""

    async def state(
        self, ref: str, *, at: int | datetime | None = None, progress: Progress | None = None
    ) -> StateAt:
        """Its state after event ``at`` (a seq), or as it was at time ``at``; by default now.

        OutOfHistoryError for a seq past its last event or a time before its first.
        ``progress`` is told how far the replay has come after each page of events.
        """

    async def diff(
        self, ref: str, first: Point, second: Point, *, progress: Progress | None = None
    ) -> DiffBetween:
        """What changed in its state from point ``first`` to point ``second``."""

    async def seq_of(self, ref: str, at: Point) -> int:
        """The seq whose state point ``at`` names: a seq of its log (0: before the first
        event), or the last event recorded at or before a time. OutOfHistoryError outside
        its log."""

    async def objects(
        self,
        *,
        binding: str | None = None,
        live: bool | None = None,
        after: tuple[str, str, str] | None = None,
        limit: int = 100,
        name: str | None = None,
    ) -> ObjectPage:
        """The catalog: every object (of ``binding``; live ones or hibernated ones only;
        whose name holds ``name``, in any case), ``limit`` at most, after the cursor
        ``after`` of the previous page."""

    async def presence(
        self,
        *,
        tag: str | None = None,
        ref: str | None = None,
        at: datetime | None = None,
        limit: int = 1000,
    ) -> list[SocketRecord]:
        """The sockets open now (or at time ``at``: connected at or before it, closed after
        it or not yet), with ``tag``, of object ``ref``; oldest connection first."""

    async def sockets(self, ref: str, socket_ids: Collection[str]) -> list[SocketRecord]:
        """These sockets of the object (open or closed), as the presence projection has them."""

    async def tail(self, after: int = 0, *, limit: int = 1000) -> TailPage:
        """Events of every object after position ``after``, in the order they committed,
        never passing one that may still commit (a page may then end early)."""

    async def head(self) -> int:
        """Where to start ``tail`` to follow only what commits from now on."""

    async def fork(
        self,
        ref: str,
        *,
        at: int | datetime,
        as_name: str,
        unique_key: str | None = None,
        by: str,
    ) -> Forked:
        """Make the object ``as_name`` of the same binding (its id ``id_from_name(as_name)``
        in the namespace keyed ``unique_key``, by default the binding's name), whose log
        begins with one ``object_forked`` event carrying ``ref``'s state after event ``at``
        (or as it was at time ``at``).

        OutOfHistoryError for a point outside ``ref``'s log; ObjectExistsError when
        ``as_name`` has events already.
        """
