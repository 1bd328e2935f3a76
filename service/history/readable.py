"""Events and values as people read them: one line per event, who sent it, values shortened.

Every event type has a sentence; a type this module does not know (one added since, or an
``UnknownEvent`` a newer node wrote) reads as its type and fields, so a new type never
breaks a reader.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from service.events import types, values
from service.ports.history import LoggedEvent, SocketRecord, UnknownEvent

#: Longest value shown whole in a line; longer ones are cut with an ellipsis.
VALUE_WIDTH = 80

#: Fields of every event that are columns of ``events``, not part of its ``data``.
_ENVELOPE = {"type", "version"}

#: Attachment keys that name a user, in the order they are looked for.
_NAME_KEYS = ("username", "user", "name", "playerId", "player_id", "user_id", "id")


def value(encoded: Any, width: int = VALUE_WIDTH) -> str:
    """An encoded value (storage, attachment, frame) as compact JSON, bytes as ``<n bytes>``."""
    text = json.dumps(
        values.decode(encoded),
        ensure_ascii=False,
        separators=(",", ":"),
        default=lambda b: f"<{len(b)} bytes>" if isinstance(b, bytes) else repr(b),
    )
    return shorten(text, width)


def shorten(text: str, width: int = VALUE_WIDTH) -> str:
    """``text`` on one line, at most ``width`` characters."""
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def frame(event: types.MessageReceived, width: int = VALUE_WIDTH) -> str:
    """An inbound frame: its text as sent, or the size of a binary one."""
    if event.binary is not None:
        return f"<{len(event.binary) * 3 // 4} bytes binary>"
    text = values.decode(event.text)
    return shorten(text if isinstance(text, str) else str(text), width)


def operator_frame(event: types.OperatorMessageSent, width: int = VALUE_WIDTH) -> str:
    """A frame an operator sent: its text, quoted, or the size of a binary one."""
    if event.binary is not None:
        size = len(event.binary) * 3 // 4 - event.binary[-2:].count("=")
        return f"<{size} bytes binary>"
    text = values.decode(event.text)
    shown = json.dumps(text if isinstance(text, str) else str(text), ensure_ascii=False)
    return shorten(shown, width)


def milliseconds(ms: int | None) -> str:
    """Epoch milliseconds as an ISO 8601 instant (UTC)."""
    if ms is None:
        return "none"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def sender_name(attachment: Any, tags: Collection[str] = ()) -> str | None:
    """Who a socket is, from its attachment (a ``username`` or the like) or a ``user:`` tag."""
    decoded = values.decode(attachment) if attachment is not None else None
    if isinstance(decoded, dict):
        for key in _NAME_KEYS:
            if isinstance(decoded.get(key), str | int) and not isinstance(decoded[key], bool):
                return str(decoded[key])
    elif isinstance(decoded, str | int) and not isinstance(decoded, bool):
        return str(decoded)
    for tag in tags:
        if tag.startswith("user:"):
            return tag.removeprefix("user:")
    if decoded is not None:
        return value(attachment, 40)
    return None


def describe(event: types.Event | UnknownEvent) -> str:
    """One line saying what the event did."""
    if isinstance(event, types.MessageReceived):
        return f"sent {frame(event)}"
    if isinstance(event, types.StoragePut):
        return "put " + ", ".join(f"{k} = {value(v, 160)}" for k, v in event.entries.items())
    if isinstance(event, types.StorageDeleted):
        return "deleted " + ", ".join(event.keys)
    if isinstance(event, types.StorageCleared):
        return "deleted every key and the alarm"
    if isinstance(event, types.WebSocketAccepted):
        tags = ", ".join(event.tags) if event.tags else "none"
        kind_of = "hibernatable" if event.hibernatable else "standard"
        return f"socket {event.socket_id} accepted ({kind_of}), tags {tags}"
    if isinstance(event, types.AttachmentSet):
        return f"socket {event.socket_id} attachment = {value(event.attachment)}"
    if isinstance(event, types.CloseSent):
        code = "no code" if event.code is None else str(event.code)
        return f"object closed socket {event.socket_id}: {code} {json.dumps(event.reason)}"
    if isinstance(event, types.WebSocketClosed):
        clean = "clean" if event.was_clean else "not clean"
        return f"socket {event.socket_id} closed: {event.code} {json.dumps(event.reason)} ({clean})"
    if isinstance(event, types.WebSocketErrored):
        return f"socket {event.socket_id} failed: {event.code} {shorten(event.error)}"
    if isinstance(event, types.AutoResponseSet):
        if event.request is None:
            return "auto-response cleared"
        return f"auto-response {json.dumps(event.request)} -> {json.dumps(event.response)}"
    if isinstance(event, types.EventTimeoutSet):
        return "event timeout cleared" if event.ms is None else f"event timeout {event.ms} ms"
    if isinstance(event, types.AlarmSet):
        return f"alarm set for {milliseconds(event.scheduled_ms)}"
    if isinstance(event, types.AlarmDeleted):
        return "alarm deleted"
    return _describe_more(event)


def _describe_more(event: types.Event | UnknownEvent) -> str:
    """``describe`` for published messages, requests, alarm runs, restores, forks and the
    operator's closes and frames, and generically for any other type."""
    if isinstance(event, types.MessagePublished):
        to = "every socket" if event.tag is None else f"sockets tagged {event.tag}"
        shown = f"<{len(event.binary) * 3 // 4} bytes>" if event.binary else value(event.data)
        return f"published {shown} to {to}"
    if isinstance(event, types.RequestReceived):
        body = f", {event.body_bytes} bytes of body" if event.body_bytes else ""
        return f"request {event.method} {shorten(event.url)}{body}"
    if isinstance(event, types.AlarmFired):
        return f"alarm ran (retry {event.retry_count})" if event.is_retry else "alarm ran"
    if isinstance(event, types.RestoreRequested):
        return f"restore to bookmark {event.bookmark} asked for (undo: {event.undo_bookmark})"
    if isinstance(event, types.StorageRestored):
        by = f" by {event.by}" if event.by is not None else ""
        keys = f"{len(event.storage)} keys"
        return f"storage restored to its state after seq {event.from_seq} ({keys}){by}"
    if isinstance(event, types.OperatorCloseSent):
        return (
            f"socket {event.socket_id} closed by {event.by}: {event.code} "
            f"{json.dumps(event.reason)}"
        )
    if isinstance(event, types.OperatorMessageSent):
        return f"sent {operator_frame(event)} to socket {event.socket_id} by {event.by}"
    if isinstance(event, types.ObjectForked):
        source = (
            f"{event.source_binding}/{event.source_name}"
            if event.source_name is not None
            else event.source_object_id
        )
        return f"forked from {source} at seq {event.source_seq} by {event.by}"
    if isinstance(event, types.RpcCalled | types.RpcReturned):
        return rpc_call(event)
    kind = event.type
    fields = fields_of(event)
    shown = ", ".join(f"{k} = {value(v, 60)}" for k, v in fields.items())
    return f"{kind}: {shown}" if shown else kind


def rpc_call(event: types.RpcCalled | types.RpcReturned) -> str:
    """A call through a stub, as a Python call with its caller; or what it came to."""
    if isinstance(event, types.RpcReturned):
        if event.error_type is not None:
            message = f": {shorten(event.error_message)}" if event.error_message else ""
            return f"call raised {event.error_type}{message}"
        return f"call returned {value(event.result)}"
    shown = [value(arg, 40) for arg in event.args]
    named = values.decode(event.kwargs)  # names as they were passed, values re-encoded
    shown += [f"{key}={value(values.encode(arg), 40)}" for key, arg in named.items()]
    caller = event.caller_label or event.caller
    by = f" by {caller}" if caller is not None else " by the router"
    return shorten(f"called {event.method}({', '.join(shown)})", 160) + by


def fields_of(event: types.Event | UnknownEvent) -> dict[str, Any]:
    """The event's fields as stored in ``events.data`` (encoded values, no envelope)."""
    if isinstance(event, UnknownEvent):
        return dict(event.data)
    # The model's own serializer, straight to JSON-ready values: what to_data writes.
    data: dict[str, Any] = event.__pydantic_serializer__.to_python(
        event, mode="json", exclude=_ENVELOPE
    )
    return data


def socket_of(event: types.Event | UnknownEvent) -> str | None:
    """The socket an event is about, if any."""
    socket_id = getattr(event, "socket_id", None)
    if socket_id is None and isinstance(event, UnknownEvent):
        socket_id = event.data.get("socket_id")
    return socket_id if isinstance(socket_id, str) else None


class Senders:
    """Who each socket is, as a reader goes through an object's events in order.

    An ``attachment_set`` read on the way is the socket's attachment from then on; a socket
    whose attachment was set before the events read falls back to its presence row (the
    latest attachment), fetched once per socket with ``learn``.
    """

    def __init__(self) -> None:
        self._attachments: dict[str, Any] = {}
        self._tags: dict[str, list[str]] = {}
        self._known: set[str] = set()
        #: Names worked out so far (a busy socket sends many events).
        self._names: dict[str, str | None] = {}

    def unknown(self, events: Iterable[LoggedEvent]) -> set[str]:
        """Sockets these events name that neither the events read so far nor a presence row
        told about yet (those accepted in these very events are learnt from them)."""
        missing: set[str] = set()
        accepted: set[str] = set()
        for logged in events:
            socket_id = socket_of(logged.event)
            if socket_id is None or socket_id in self._known or socket_id in accepted:
                continue
            if isinstance(logged.event, types.WebSocketAccepted):
                accepted.add(socket_id)
            else:
                missing.add(socket_id)
        return missing

    def learn(self, rows: Iterable[SocketRecord], asked: Iterable[str] = ()) -> None:
        """Take the presence rows of sockets asked about (those without a row stay unknown)."""
        for row in rows:
            if row.socket_id not in self._known:
                self._attachments[row.socket_id] = row.attachment
                self._tags[row.socket_id] = list(row.tags)
                self._names.pop(row.socket_id, None)
        self._known.update(asked)

    def observe(self, event: types.Event | UnknownEvent) -> None:
        """Follow the event: an accept's tags, an attachment set."""
        if isinstance(event, types.WebSocketAccepted):
            self._tags[event.socket_id] = list(event.tags)
            self._attachments[event.socket_id] = None
            self._known.add(event.socket_id)
            self._names.pop(event.socket_id, None)
        elif isinstance(event, types.AttachmentSet):
            self._attachments[event.socket_id] = event.attachment
            self._known.add(event.socket_id)
            self._names.pop(event.socket_id, None)

    def attachment(self, socket_id: str | None) -> Any:
        """The socket's attachment as known at this point (encoded), or None."""
        return None if socket_id is None else self._attachments.get(socket_id)

    def name(self, socket_id: str | None) -> str | None:
        """Who the socket is at this point, or None."""
        if socket_id is None:
            return None
        if socket_id not in self._names:
            attachment = self._attachments.get(socket_id)
            self._names[socket_id] = sender_name(attachment, self._tags.get(socket_id, ()))
        return self._names[socket_id]
