"""The records of one flush, defined once: durable_flush_v1's parameters and row types.

Each kind of row a flush writes has one function here that makes it: its parameters name
the row's fields in order, with their SQL types, and the composite type of migration
dd9f2007840a that it is registered under declares the same fields (a test compares the
two in the migrated database); the outbox's type is d7a9c3e5f1b2's, for durable_route_v2
and v3, and the log lines' e5b7d9f1a3c6's, for durable_logs_v1.
A row is a plain tuple: asyncpg sends a tuple as a composite value field by field, and
COPY takes the events' rows as they are, with no codec to register. Not a NamedTuple: the
garbage collector never untracks instances of a tuple subclass, and thousands of them alive
in every flush cost more CPU per event than the rest of building the flush (``python -m
bench append``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple, TypeVar


@dataclass(frozen=True, slots=True)
class Sql:
    """The SQL type the migration declares for a field or a parameter."""

    type: str


Text = Annotated[str, Sql("text")]
TextOrNull = Annotated[str | None, Sql("text")]
TextArray = Annotated[list[str], Sql("text[]")]
BigInt = Annotated[int, Sql("bigint")]
BigIntOrNull = Annotated[int | None, Sql("bigint")]
Integer = Annotated[int, Sql("integer")]
IntegerOrNull = Annotated[int | None, Sql("integer")]
BytesOrNull = Annotated[bytes | None, Sql("bytea")]
SmallInt = Annotated[int, Sql("smallint")]
Float = Annotated[float, Sql("double precision")]
Boolean = Annotated[bool, Sql("boolean")]
#: JSON text; ``json`` keeps it as written (key order), ``jsonb`` parses it.
Json = Annotated[str, Sql("json")]
Jsonb = Annotated[str, Sql("jsonb")]

RowFunction = TypeVar("RowFunction", bound=Callable[..., tuple[Any, ...]])

#: The function that makes each composite type's rows, by the type's name.
ROW_TYPES: dict[str, Callable[..., tuple[Any, ...]]] = {}


def row_type(name: str) -> Callable[[RowFunction], RowFunction]:
    """Register a row function as the maker of composite type ``name`` (unchanged: a row
    costs one call and one tuple)."""

    def register(function: RowFunction) -> RowFunction:
        ROW_TYPES[name] = function
        return function

    return register


# Each row's shape, as its function below makes it (mypy checks one against the other).
AdvanceRow = tuple[str, int, int, int]
EventRow = tuple[str, int, str, int, str]
AcceptedRow = tuple[str, str, list[str], bool, str | None]
AttachmentRow = tuple[str, str, str]
TouchedRow = tuple[str, str]
ClosedRow = tuple[str, str, int, str, bool]
AlarmRow = tuple[str, int | None]
SnapshotRow = tuple[str, int, str]
ConsumedRow = tuple[str, int]
InboxRow = tuple[str, str, str, str]
LogRow = tuple[str, int, int, float, int, str, str]
OutboxRow = tuple[
    str | None,
    str,
    str,
    str,
    str | None,
    bytes | None,
    int | None,
    str | None,
    str | None,
    str | None,
]


@row_type("durable_flush_advance_v1")
def advance(object_id: Text, expected_seq: BigInt, last_seq: BigInt, epoch: BigInt) -> AdvanceRow:
    """An object's fenced advance: it holds only if the object is still at
    ``expected_seq`` under owner ``epoch``."""
    return (object_id, expected_seq, last_seq, epoch)


@row_type("durable_flush_event_v1")
def event(object_id: Text, seq: BigInt, type: Text, version: SmallInt, data: Json) -> EventRow:
    """A row of ``events``, in position order."""
    return (object_id, seq, type, version, data)


@row_type("durable_flush_accepted_v1")
def accepted(
    object_id: Text, socket_id: Text, tags: TextArray, hibernatable: Boolean, url: TextOrNull
) -> AcceptedRow:
    """A socket accepted: its new row of ``websockets``."""
    return (object_id, socket_id, tags, hibernatable, url)


@row_type("durable_flush_attachment_v1")
def attachment(object_id: Text, socket_id: Text, attachment: Jsonb) -> AttachmentRow:
    """A socket's last attachment in the flush."""
    return (object_id, socket_id, attachment)


@row_type("durable_flush_touched_v1")
def touched(object_id: Text, socket_id: Text) -> TouchedRow:
    """A socket that received a message."""
    return (object_id, socket_id)


@row_type("durable_flush_closed_v1")
def closed(
    object_id: Text, socket_id: Text, close_code: Integer, close_reason: Text, was_clean: Boolean
) -> ClosedRow:
    """A socket's first end in the flush, closed or errored."""
    return (object_id, socket_id, close_code, close_reason, was_clean)


@row_type("durable_flush_alarm_v1")
def alarm(object_id: Text, scheduled_ms: BigIntOrNull) -> AlarmRow:
    """An object's alarm as the flush leaves it, in epoch milliseconds; None if deleted."""
    return (object_id, scheduled_ms)


@row_type("durable_flush_snapshot_v1")
def snapshot(object_id: Text, seq: BigInt, state: Json) -> SnapshotRow:
    """An object's folded state after event ``seq``."""
    return (object_id, seq, state)


@row_type("durable_flush_consumed_v1")
def consumed(object_id: Text, id: BigInt) -> ConsumedRow:
    """An inbox row the flush's events consumed."""
    return (object_id, id)


@row_type("durable_flush_inbox_v1")
def inbox(object_id: Text, kind: Text, socket_id: Text, data: Jsonb) -> InboxRow:
    """A new inbox row; its id comes back from the flush."""
    return (object_id, kind, socket_id, data)


@row_type("durable_outbox_v2")
def outbox(
    node: TextOrNull,
    object_id: Text,
    socket_id: Text,
    kind: Text,
    text: TextOrNull,
    data: BytesOrNull,
    close_code: IntegerOrNull,
    close_reason: TextOrNull,
    request_id: TextOrNull,
    reply: Annotated[str | None, Sql("jsonb")],
) -> OutboxRow:
    """A row of ``outbox``: a frame, close or resume for a socket another node holds
    (``node`` None: durable_route_v3 addresses it to the node ``websockets`` says holds the
    socket), or a reply to a request or call routed from ``node``."""
    return (
        node,
        object_id,
        socket_id,
        kind,
        text,
        data,
        close_code,
        close_reason,
        request_id,
        reply,
    )


@row_type("durable_log_v1")
def log_line(
    object_id: Text,
    seq: BigInt,
    line: Integer,
    logged_at: Float,
    level: SmallInt,
    logger: Text,
    message: Text,
) -> LogRow:
    """A row of ``object_logs``: line ``line`` of the turn that ended at ``seq``, logged at
    ``logged_at`` (epoch seconds)."""
    return (object_id, seq, line, logged_at, level, logger, message)


#: The composite types that are not parameters of durable_flush_v1: durable_route_v3's.
ROUTE_ROW_TYPES = frozenset({"durable_outbox_v2"})

#: ... and durable_logs_v1's.
LOG_ROW_TYPES = frozenset({"durable_log_v1"})


class Arguments(NamedTuple):
    """The parameters of ``durable_flush_v1``, by name and in order."""

    node_id: Text
    channel: Text
    #: The one NOTIFY payload of the flush, if it wakes anyone.
    wake: TextOrNull
    advances: Annotated[list[AdvanceRow], Sql("durable_flush_advance_v1[]")]
    #: Empty when the events go by COPY.
    new_events: Annotated[list[EventRow], Sql("durable_flush_event_v1[]")]
    accepted_sockets: Annotated[list[AcceptedRow], Sql("durable_flush_accepted_v1[]")]
    attachments: Annotated[list[AttachmentRow], Sql("durable_flush_attachment_v1[]")]
    touched_sockets: Annotated[list[TouchedRow], Sql("durable_flush_touched_v1[]")]
    closed_sockets: Annotated[list[ClosedRow], Sql("durable_flush_closed_v1[]")]
    alarm_changes: Annotated[list[AlarmRow], Sql("durable_flush_alarm_v1[]")]
    new_snapshots: Annotated[list[SnapshotRow], Sql("durable_flush_snapshot_v1[]")]
    consumed_inbox: Annotated[list[ConsumedRow], Sql("durable_flush_consumed_v1[]")]
    new_inbox: Annotated[list[InboxRow], Sql("durable_flush_inbox_v1[]")]


def fields(definition: Callable[..., Any] | type) -> list[tuple[str, str]]:
    """(name, SQL type) of a row function's fields or of Arguments, in order."""
    hints = typing.get_type_hints(definition, include_extras=True)
    if isinstance(definition, type):
        names = list(definition._fields)  # type: ignore[attr-defined]
    else:
        names = list(inspect.signature(definition).parameters)
    return [(name, _sql_type(hints[name])) for name in names]


def _sql_type(hint: object) -> str:
    for metadata in getattr(hint, "__metadata__", ()):
        if isinstance(metadata, Sql):
            return metadata.type
    raise TypeError(f"{hint!r} does not say its SQL type")
