"""The event types of an object's log: one pydantic model per fact, a discriminated union.

Each event is stored as a row of ``events``: ``type`` holds the discriminator, ``data`` the
other fields, ``version`` the schema version of that type. Storage values and attachments
appear in their encoded form (see ``values``), so SQL users can read them as jsonb.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Schema version of this event type; bump it with an upcaster when a type changes.
    version: Literal[1] = 1


class WebSocketAccepted(_Event):
    """A socket was accepted: hibernatable (``ctx.accept_websocket``) or standard (``accept``)."""

    type: Literal["websocket_accepted"] = "websocket_accepted"
    socket_id: str
    tags: list[str] = Field(default_factory=list)
    hibernatable: bool = True
    url: str | None = None
    protocol: str | None = None


class AttachmentSet(_Event):
    """``ws.serialize_attachment(value)``; ``attachment`` is the encoded value."""

    type: Literal["attachment_set"] = "attachment_set"
    socket_id: str
    attachment: Any = None


class CloseSent(_Event):
    """The object called ``ws.close()``: the socket stays listed until the peer answers."""

    type: Literal["close_sent"] = "close_sent"
    socket_id: str
    code: int | None = None
    reason: str = ""


class WebSocketClosed(_Event):
    """The connection ended; ``was_clean`` is false when the peer vanished without a Close."""

    type: Literal["websocket_closed"] = "websocket_closed"
    socket_id: str
    code: int
    reason: str = ""
    was_clean: bool


class WebSocketErrored(_Event):
    """The connection ended with an error (oversized frame, invalid UTF-8, protocol error)."""

    type: Literal["websocket_error"] = "websocket_error"
    socket_id: str
    error: str
    #: The close code the connection ended with (1009 too big, 1007 bad UTF-8, ...).
    code: int = 1006


class MessageReceived(_Event):
    """An inbound frame, recorded before the handler's effects in the same commit.

    Exactly one of ``text`` (an encoded string) and ``binary`` (base64) is set.
    """

    type: Literal["message_received"] = "message_received"
    socket_id: str
    text: Any = None
    binary: str | None = None


#: Request headers whose values are credentials: recorded as ``REDACTED``, never as sent.
REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
REDACTED = "[redacted]"


class RequestReceived(_Event):
    """An HTTP request to the object's ``fetch`` (a WebSocket upgrade too), recorded first in
    the turn it starts, so the log holds what came in beside what it caused.

    Headers are kept as sent (one value per name), except the values of ``REDACTED_HEADERS``.
    The body is kept up to the inbound message size limit: ``text`` when it is UTF-8 (an
    encoded string), else ``binary`` (base64); ``body_bytes`` is its whole length, so a cut
    body shows.
    """

    type: Literal["request_received"] = "request_received"
    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    text: Any = None
    binary: str | None = None
    body_bytes: int = 0


class AlarmFired(_Event):
    """The alarm came due and ran: recorded first in its turn, before ``alarm_deleted`` (the
    alarm no longer counts as set while its handler runs) and what the handler did."""

    type: Literal["alarm_fired"] = "alarm_fired"
    #: Failed runs of this alarm before this one (``alarm_info.retry_count``).
    retry_count: int = 0
    is_retry: bool = False


class MessagePublished(_Event):
    """``ctx.publish(data, tag)``: a message to every open socket (with ``tag``, if set).

    Its seq is the message's position, which clients resume after. Exactly one of ``data``
    (a JSON value, encoded as storage values are) and ``binary`` (base64) is set, or neither
    for a published ``None``.
    """

    type: Literal["message_published"] = "message_published"
    #: Only sockets carrying this tag get it (None: every hibernatable socket).
    tag: str | None = None
    data: Any = None
    binary: str | None = None


class StoragePut(_Event):
    """One ``put`` call: key to encoded value, applied in order."""

    type: Literal["storage_put"] = "storage_put"
    entries: dict[str, Any]


class StorageDeleted(_Event):
    """One ``delete`` call: the keys that existed and were removed."""

    type: Literal["storage_deleted"] = "storage_deleted"
    keys: list[str]


class StorageCleared(_Event):
    """``delete_all``: every key, and the alarm, are gone."""

    type: Literal["storage_cleared"] = "storage_cleared"


class AutoResponseSet(_Event):
    """``ctx.set_websocket_auto_response``; both fields are None when it was cleared."""

    type: Literal["auto_response_set"] = "auto_response_set"
    request: str | None = None
    response: str | None = None


class EventTimeoutSet(_Event):
    """``ctx.set_hibernatable_websocket_event_timeout``; None clears it."""

    type: Literal["event_timeout_set"] = "event_timeout_set"
    ms: int | None = None


class AlarmSet(_Event):
    """``storage.set_alarm``: one scheduled time per object, in epoch milliseconds."""

    type: Literal["alarm_set"] = "alarm_set"
    scheduled_ms: int


class AlarmDeleted(_Event):
    """``storage.delete_alarm``, or an alarm that ran to completion (or gave up)."""

    type: Literal["alarm_deleted"] = "alarm_deleted"


class RestoreRequested(_Event):
    """``storage.on_next_session_restore_bookmark``: the object's next activation restores
    storage to ``bookmark`` (a later request replaces an earlier one that has not run)."""

    type: Literal["restore_requested"] = "restore_requested"
    #: The state to restore (``service.events.bookmarks``).
    bookmark: str
    #: The state just before this request, returned to the caller: restoring it undoes the
    #: restore.
    undo_bookmark: str


class StorageRestored(_Event):
    """A requested restore, done when the object woke, before its constructor ran.

    It carries what it restored, so that folding it needs nothing but the event: the whole
    keyspace and the alarm as they were after event ``from_seq``. Sockets, the
    auto-response and the event timeout are not storage and stay as they were.
    """

    type: Literal["storage_restored"] = "storage_restored"
    bookmark: str
    #: The seq whose state was restored (the one ``bookmark`` names).
    from_seq: int
    #: Every key, to its encoded value.
    storage: dict[str, Any]
    #: The alarm then, in epoch milliseconds, or None.
    alarm_ms: int | None = None
    #: Who restored it through the admin API (``NAME (admin-api from ADDRESS)``); None for
    #: the restore an object asked for, whose stored data then has no ``by`` at all, as
    #: before operators could restore (a node of an older version reads it still).
    by: str | None = None

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("by", "") is None:
            del data["by"]
        return data


class OperatorCloseSent(_Event):
    """An operator closed the socket through the admin API, with ``code`` and ``reason``:
    as after ``ws.close()`` in the object, the socket stays listed (closing) until its
    connection ends, and then ``websocket_close`` runs and ``websocket_closed`` follows."""

    type: Literal["operator_close_sent"] = "operator_close_sent"
    socket_id: str
    code: int
    reason: str = ""
    #: Who closed it (``NAME (admin-api from ADDRESS)``).
    by: str


class OperatorMessageSent(_Event):
    """An operator sent the socket a frame through the admin API: exactly one of ``text``
    (an encoded string) and ``binary`` (base64) is set. It changes no state."""

    type: Literal["operator_message_sent"] = "operator_message_sent"
    socket_id: str
    text: Any = None
    binary: str | None = None
    #: Who sent it (``NAME (admin-api from ADDRESS)``).
    by: str


class ObjectForked(_Event):
    """The first event of an object made by ``durable fork``: where it came from, who made
    it, and the state it starts with, copied from the source's state after ``source_seq``.

    Storage, the auto-response, the event timeout and the alarm are copied; sockets are
    connections to the source and are not.
    """

    type: Literal["object_forked"] = "object_forked"
    source_object_id: str
    source_binding: str
    source_name: str | None = None
    source_seq: int
    #: The operator who ran the command, as ``user@host``.
    by: str
    storage: dict[str, Any]
    #: (request, response), or None.
    auto_response: tuple[str, str] | None = None
    event_timeout_ms: int | None = None
    alarm_ms: int | None = None


class RpcCalled(_Event):
    """A call of one of the object's methods through a stub (RPC), recorded first in the
    turn it starts; ``rpc_returned`` ends that turn with what the call came to.

    ``args`` and ``kwargs`` are encoded values (as storage values are).
    """

    type: Literal["rpc_called"] = "rpc_called"
    #: Unique per call (32 hex digits); the ``rpc_returned`` of the call carries it too.
    call_id: str
    method: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: The calling object's id and ``BINDING/name``; None when no object called (the
    #: application's router).
    caller: str | None = None
    caller_label: str | None = None


class RpcReturned(_Event):
    """What a call came to, recorded last in its turn, after what the method wrote: its
    ``result`` (an encoded value), or the type name and message of the exception it raised
    (then what the method wrote was undone, as with any handler that raises)."""

    type: Literal["rpc_returned"] = "rpc_returned"
    call_id: str
    result: Any = None
    #: The exception's class name (``ValueError``), or None when the call returned.
    error_type: str | None = None
    error_message: str = ""


Event = Annotated[
    WebSocketAccepted
    | AttachmentSet
    | CloseSent
    | WebSocketClosed
    | WebSocketErrored
    | MessageReceived
    | RequestReceived
    | AlarmFired
    | MessagePublished
    | StoragePut
    | StorageDeleted
    | StorageCleared
    | AutoResponseSet
    | EventTimeoutSet
    | AlarmSet
    | AlarmDeleted
    | RestoreRequested
    | StorageRestored
    | OperatorCloseSent
    | OperatorMessageSent
    | ObjectForked
    | RpcCalled
    | RpcReturned,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

#: Fields that are columns of ``events`` rather than parts of ``data``.
_ENVELOPE = {"type", "version"}


def to_data(event: Event) -> str:
    """The JSON text stored in ``events.data``: every field but the envelope."""
    # The serializer itself: model_dump_json's argument handling costs more than the work.
    return event.__pydantic_serializer__.to_json(event, exclude=_ENVELOPE).decode()


def from_row(type_: str, version: int, data: dict[str, Any] | str) -> Event:
    """Rebuild an event from its row; ``data`` may be parsed already or JSON text."""
    if isinstance(data, str):
        # Parsed and validated in one pass by pydantic's own JSON parser: a third of the
        # cost of json.loads and validate_python, which counts when a wake replays a long
        # log. The envelope goes last so that it wins, as it does below.
        body = data.strip()
        if not body.startswith("{") or not body.endswith("}"):
            raise ValueError(f"event data is not a JSON object: {data[:40]!r}")
        head = body[:-1].rstrip()
        envelope = f'"type":{json.dumps(type_)},"version":{int(version)}}}'
        return EVENT_ADAPTER.validate_json(head + ("" if head == "{" else ",") + envelope)
    return EVENT_ADAPTER.validate_python({**data, "type": type_, "version": version})
