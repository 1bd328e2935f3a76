"""Plain records exchanged between the runtime and the event log (no behaviour, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.events.types import Event


@dataclass(slots=True)
class Append:
    """Events of one object to append after ``expected_seq``, under owner ``epoch``.

    An append with no events may still carry a snapshot or consume inbox items.
    """

    object_id: str
    epoch: int
    expected_seq: int
    events: list[Event] = field(default_factory=list)
    #: (seq, JSON text) of a snapshot to store in the same commit.
    snapshot: tuple[int, str] | None = None
    #: Inbox rows this commit consumes (deleted in the same transaction as the events).
    consumed_inbox: list[int] = field(default_factory=list)
    #: Output for sockets other nodes hold, written to the outbox in the same transaction.
    outbox: list[RemoteOutput] = field(default_factory=list)
    #: What the turn logged, written to ``object_logs`` in the same transaction, with the
    #: seq the append ends at (its last event's, or ``expected_seq`` if it has none).
    logs: list[LogLine] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line an object's code logged in a turn, as ``object_logs`` keeps it."""

    #: When it was logged, in epoch seconds (``LogRecord.created``).
    at: float
    #: The logging level's number (20: INFO).
    level: int
    logger: str
    #: The formatted message, with its exception's traceback if any.
    message: str


@dataclass(slots=True)
class RemoteOutput:
    """A frame, close or resume for a socket another node holds, or a reply to a request
    or call another node routed here: written to the outbox by the commit of the turn that
    made it, delivered by the node holding the socket (or waiting for the reply)."""

    socket_id: str
    #: "text", "binary", "close", "resume" (``reply`` holds the range of the log to send),
    #: "auto_response" (``reply`` holds the object and its new pair) or "reply".
    kind: str
    text: str | None = None
    #: A binary frame's bytes, or a reply's body.
    data: bytes | None = None
    #: A close's code (None: no code) and reason.
    code: int | None = None
    reason: str | None = None
    #: The row's place in its node's outbox, once read from there.
    position: int = 0
    #: A reply's destination: the node that asked (None: the node holding the socket).
    node: str | None = None
    #: A reply's request (or call) id.
    request_id: str | None = None
    #: What a reply or a resume carries, as JSON values.
    reply: dict[str, Any] | None = None


@dataclass(slots=True)
class InboxItem:
    """Work for an object that is not live here: a frame, a close or an error of a socket,
    or a request or RPC call routed from another node."""

    object_id: str
    kind: str
    socket_id: str
    data: dict[str, Any]
    #: Assigned by the store once the row exists.
    id: int | None = None


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    """A message an object published, as a resume reads it from the log: its seq and its
    payload as the log holds it, so that its frame is rebuilt without decoding the event."""

    seq: int
    #: The JSON text of its ``data`` as stored (an encoded value), unless it is bytes.
    data: str | None
    #: Its bytes, base64-encoded, or None.
    binary: str | None


@dataclass(slots=True)
class Claim:
    """Ownership of an object, taken by a node before it replays and runs it."""

    object_id: str
    binding: str
    name: str | None
    epoch: int
    last_seq: int
