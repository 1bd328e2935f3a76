"""The admin API's bodies as pydantic models: the schemas of its OpenAPI document.

The records themselves are built by ``service.history.json_shapes`` (the history commands
print the same with ``--json``); these models describe them, and the tests hold every
answer to its model (no key missing, none extra). Values (storage, attachments, frames)
are in their encoded form: plain JSON, bytes as ``{"$bytes": "<base64>"}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectShape(_Shape):
    """An object of the catalog (``durable objects --json``)."""

    object_id: str = Field(description="64 hex digits")
    binding: str
    name: str | None = Field(description="the name given to id_from_name, if any")
    label: str = Field(description="BINDING/NAME, or BINDING/ID without a name")
    created_at: datetime
    last_seq: int = Field(description="seq of its newest event")
    last_activity: datetime
    live: bool = Field(description="a node runs it now (false: it hibernates)")
    owner_node: str | None
    open_sockets: int


class EventShape(_Shape):
    """An event of an object's log (``durable events --json``)."""

    object_id: str
    object: str | None = Field(description="the object's label")
    seq: int
    position: int = Field(description="place in the global log (the tail's cursor)")
    recorded_at: datetime
    type: str
    version: int
    data: dict[str, Any] = Field(description="the event's fields")
    socket_id: str | None = Field(description="the socket it is about")
    sender: str | None = Field(description="who that socket is (attachment or user: tag)")
    sender_attachment: Any = Field(description="that socket's attachment (encoded)")
    text: str = Field(description="the line durable events prints")


class LogShape(_Shape):
    """A line an object's code logged in one of its turns (``durable logs --json``)."""

    object_id: str
    object: str | None = Field(description="the object's label")
    seq: int = Field(
        description="its turn's: the object's seq when the turn ended (its last event's, or "
        "the seq the object was at if it recorded none)"
    )
    id: int = Field(description="with seq, the lines' order, which is commit order")
    line: int = Field(description="its place in its turn, from 1")
    logged_at: datetime
    level: str = Field(description="the level's name: DEBUG, INFO, WARNING, ERROR, CRITICAL")
    levelno: int = Field(description="the level's number (20: INFO)")
    logger: str = Field(description="the logger's name")
    message: str = Field(description="the formatted message, with a logged exception's traceback")


class SocketStateShape(_Shape):
    """A socket as an object's state holds it."""

    socket_id: str
    tags: list[str]
    hibernatable: bool
    attachment: Any
    url: str | None
    protocol: str | None
    close_sent: bool


class AutoResponseShape(_Shape):
    request: str
    response: str


class StateShape(_Shape):
    """An object's state after one of its events (``durable state --json``)."""

    object: ObjectShape
    seq: int = Field(description="the event the state is after (0: before the first)")
    snapshot_seq: int = Field(description="the snapshot the replay started from (0: none)")
    folded: int = Field(description="events the replay folded")
    storage: dict[str, Any] = Field(description="each key to its encoded value")
    sockets: list[SocketStateShape]
    auto_response: AutoResponseShape | None
    event_timeout_ms: int | None
    alarm: str | None = Field(description="the alarm's time, ISO 8601")
    alarm_ms: int | None = Field(description="the alarm's time, epoch milliseconds")
    messages: int = Field(description="inbound messages recorded")


class PresenceShape(_Shape):
    """A socket of the presence table (``durable presence --json``)."""

    object_id: str
    object: str
    binding: str
    name: str | None
    socket_id: str
    tags: list[str]
    attachment: Any = Field(description="its latest attachment (encoded)")
    user: str | None
    connected_at: datetime
    last_activity_at: datetime
    closed_at: datetime | None
    close_code: int | None
    node: str | None = Field(description="the node whose gateway holds the connection")


class KeyChangeShape(_Shape):
    key: str
    change: Literal["added", "removed", "changed"]
    old: Any
    new: Any


class SocketChangeShape(_Shape):
    socket_id: str
    before: SocketStateShape
    after: SocketStateShape


class FieldChangeShape(_Shape):
    name: str = Field(description="auto_response, event_timeout_ms, alarm_ms or messages")
    old: Any
    new: Any


class DiffShape(_Shape):
    """What changed in an object's state between two points (``durable diff --json``)."""

    object: ObjectShape
    from_seq: int
    to_seq: int
    storage: list[KeyChangeShape]
    sockets_opened: list[SocketStateShape]
    sockets_closed: list[SocketStateShape]
    sockets_changed: list[SocketChangeShape]
    fields: list[FieldChangeShape]


class ObjectPageShape(_Shape):
    """A page of the catalog, by binding, name and id."""

    objects: list[ObjectShape]
    cursor: str | None = Field(description="pass as cursor for the next page; null: no more")


class EventPageShape(_Shape):
    """A page of an object's events, in seq order (newest first with order=desc)."""

    object: ObjectShape
    events: list[EventShape]
    cursor: int | None = Field(
        description="pass as cursor (with the same order) for the next page; null: no more"
    )


class LogPageShape(_Shape):
    """A page of an object's log lines, in (seq, id) order."""

    object: ObjectShape
    logs: list[LogShape]
    cursor: str | None = Field(description="pass as cursor for the next page; null: no more")


class PresencePageShape(_Shape):
    """Sockets open now or at a time, oldest connection first."""

    sockets: list[PresenceShape]
    more: bool = Field(description="more sockets matched than limit")


class ForkSourceShape(_Shape):
    object_id: str
    binding: str
    name: str | None


class ForkedShape(_Shape):
    """The object a fork made (``durable fork --json``)."""

    object_id: str
    binding: str
    name: str
    seq: int = Field(description="the source's event whose state it starts with")
    source: ForkSourceShape
    by: str = Field(description="who made it, as its first event records")
    keys: int
    alarm_ms: int | None


class ForkRequestShape(_Shape):
    """What to fork: the state after a seq or at a time, and the new object's name."""

    at: int | str = Field(description="a seq, or an ISO 8601 time with its zone, or 'now'")
    as_: str = Field(alias="as", description="the fork's name (id_from_name in its namespace)")


class RestoreRequestShape(_Shape):
    """The state to restore: the object's storage and alarm after a seq or at a time."""

    at: int | str = Field(
        description="a seq, a bookmark (20 digits), or an ISO 8601 time with its zone, or 'now'"
    )


class RestoredShape(_Shape):
    """A restore, done and committed: its event, and the state storage holds now."""

    object_id: str
    seq: int = Field(description="the storage_restored event that records it")
    from_seq: int = Field(description="the event whose state storage went back to")
    bookmark: str = Field(description="that state's bookmark")
    by: str = Field(description="who restored it, as the event records")
    keys: int = Field(description="keys storage holds now")
    alarm_ms: int | None = Field(description="the alarm now, epoch milliseconds")


class CloseRequestShape(_Shape):
    """How to close the socket: the Close frame's code and reason."""

    code: int = Field(
        1000,
        ge=1000,
        le=4999,
        description="1000 to 4999, except 1004, 1005, 1006 and 1015 (default 1000)",
    )
    reason: str = Field("", description="at most 123 bytes of UTF-8")


class SendRequestShape(_Shape):
    """The frame to send: give exactly one of text and base64."""

    text: str | None = Field(None, description="a text frame")
    base64: str | None = Field(None, description="a binary frame, its bytes base64-encoded")


class SocketActionShape(_Shape):
    """A close or a send, done and committed (the frame or Close frame then leaves)."""

    object_id: str
    socket_id: str
    seq: int = Field(description="the event that records it")
    by: str = Field(description="who did it, as the event records")


class TailStartShape(_Shape):
    """The first message of a tail (SSE event ``ready``, its id the position it starts
    after): later ones are events (SSE event ``event``, data an EventShape, id its position
    or, for one object, its seq)."""

    after: int = Field(description="the position (or seq) the tail starts after")


class ErrorShape(_Shape):
    """Every refusal: what was wrong, and what to ask instead."""

    error: str
