"""The JSON shapes of the history's records, built in one place for every front end.

The ``durable`` history commands print one of these per line with ``--json``; an admin API
answers with the same. Keys are stable: every key is always present (``null`` when it has
no value), times are ISO 8601 with their offset, values (storage, attachments, frames) are
in their encoded form, exactly as ``events.data`` holds them (plain JSON, with bytes as
``{"$bytes": "<base64>"}``).

- object: ``{"object_id", "binding", "name", "label", "created_at", "last_seq",
  "last_activity", "live", "owner_node", "open_sockets"}``
- event: ``{"object_id", "object", "seq", "position", "recorded_at", "type", "version",
  "data", "socket_id", "sender", "sender_attachment", "text"}``; ``data`` is the event's
  fields; ``socket_id`` the socket it is about (or null), ``sender`` who that socket is
  and ``sender_attachment`` its attachment at that point (when known); ``text`` the line
  ``durable events`` prints.
- log line: ``{"object_id", "object", "seq", "id", "line", "logged_at", "level",
  "levelno", "logger", "message"}``; ``seq`` is its turn's (the object's seq when the turn
  ended), ``line`` its place in the turn, ``level`` the level's name and ``levelno`` its
  number; ``message`` holds the traceback of a logged exception.
- state: ``{"object", "seq", "snapshot_seq", "folded", "storage", "sockets",
  "auto_response", "event_timeout_ms", "alarm", "alarm_ms", "messages"}``; ``storage`` maps
  each key to its value; a socket is ``{"socket_id", "tags", "hibernatable", "attachment",
  "url", "protocol", "close_sent"}``; ``auto_response`` is ``{"request", "response"}``.
- socket (presence): ``{"object_id", "object", "binding", "name", "socket_id", "tags",
  "attachment", "user", "connected_at", "last_activity_at", "closed_at", "close_code",
  "node"}``.
- diff: ``{"object", "from_seq", "to_seq", "storage", "sockets_opened", "sockets_closed",
  "sockets_changed", "fields"}``; a storage change is ``{"key", "change", "old", "new"}``
  (``change``: added, removed or changed); a changed socket is ``{"socket_id", "before",
  "after"}`` (two sockets); a field is ``{"name", "old", "new"}``.
- forked: ``{"object_id", "binding", "name", "seq", "source", "by", "keys", "alarm_ms"}``;
  ``source`` is ``{"object_id", "binding", "name"}``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from service.events.fold import ObjectState, SocketState
from service.history import readable
from service.ports.history import (
    DiffBetween,
    FieldChange,
    Forked,
    LoggedEvent,
    LoggedLine,
    ObjectInfo,
    SocketRecord,
    StateAt,
)


def label(binding: str, name: str | None, object_id: str) -> str:
    """How people name an object: ``BINDING/NAME``, or ``BINDING/<id>`` when it has no name."""
    return f"{binding}/{name if name is not None else object_id}"


def label_of(found: ObjectInfo) -> str:
    return label(found.binding, found.name, found.object_id)


def object_info(found: ObjectInfo) -> dict[str, Any]:
    return {
        "object_id": found.object_id,
        "binding": found.binding,
        "name": found.name,
        "label": label_of(found),
        "created_at": _time(found.created_at),
        "last_seq": found.last_seq,
        "last_activity": _time(found.last_activity),
        "live": found.live,
        "owner_node": found.owner_node,
        "open_sockets": found.open_sockets,
    }


def event(
    logged: LoggedEvent, object_label: str | None, senders: readable.Senders | None = None
) -> dict[str, Any]:
    """One event; ``senders`` (already past this event) names who sent it."""
    socket_id = readable.socket_of(logged.event)
    attachment = senders.attachment(socket_id) if senders is not None else None
    sender = senders.name(socket_id) if senders is not None else None
    return {
        "object_id": logged.object_id,
        "object": object_label,
        "seq": logged.seq,
        "position": logged.position,
        "recorded_at": _time(logged.recorded_at),
        "type": logged.event.type,
        "version": logged.event.version,
        "data": readable.fields_of(logged.event),
        "socket_id": socket_id,
        "sender": sender,
        "sender_attachment": attachment,
        "text": readable.describe(logged.event),
    }


def log_line(logged: LoggedLine, object_label: str | None) -> dict[str, Any]:
    """One line an object logged in a turn."""
    return {
        "object_id": logged.object_id,
        "object": object_label,
        "seq": logged.seq,
        "id": logged.id,
        "line": logged.line,
        "logged_at": _time(logged.logged_at),
        "level": level_name(logged.level),
        "levelno": logged.level,
        "logger": logged.logger,
        "message": logged.message,
    }


def level_name(level: int) -> str:
    """A logging level's name (``Level 25`` for one without a name, as logging says)."""
    return logging.getLevelName(level)


def socket_state(socket: SocketState) -> dict[str, Any]:
    return {
        "socket_id": socket.socket_id,
        "tags": list(socket.tags),
        "hibernatable": socket.hibernatable,
        "attachment": socket.attachment,
        "url": socket.url,
        "protocol": socket.protocol,
        "close_sent": socket.close_sent,
    }


def state(at: StateAt) -> dict[str, Any]:
    folded: ObjectState = at.state
    auto = folded.auto_response
    return {
        "object": object_info(at.object),
        "seq": at.seq,
        "snapshot_seq": at.snapshot_seq,
        "folded": at.folded,
        "storage": dict(folded.storage),
        "sockets": [socket_state(s) for s in folded.sockets.values()],
        "auto_response": None if auto is None else {"request": auto[0], "response": auto[1]},
        "event_timeout_ms": folded.event_timeout_ms,
        "alarm": None if folded.alarm_ms is None else readable.milliseconds(folded.alarm_ms),
        "alarm_ms": folded.alarm_ms,
        "messages": folded.messages,
    }


def socket(row: SocketRecord) -> dict[str, Any]:
    return {
        "object_id": row.object_id,
        "object": label(row.binding, row.name, row.object_id),
        "binding": row.binding,
        "name": row.name,
        "socket_id": row.socket_id,
        "tags": list(row.tags),
        "attachment": row.attachment,
        "user": readable.sender_name(row.attachment, row.tags),
        "connected_at": _time(row.connected_at),
        "last_activity_at": _time(row.last_activity_at),
        "closed_at": _time(row.closed_at),
        "close_code": row.close_code,
        "node": row.node,
    }


def diff(between: DiffBetween) -> dict[str, Any]:
    changes = between.diff
    return {
        "object": object_info(between.object),
        "from_seq": between.from_seq,
        "to_seq": between.to_seq,
        "storage": [
            {"key": c.key, "change": c.change, "old": c.old, "new": c.new} for c in changes.storage
        ],
        "sockets_opened": [socket_state(s) for s in changes.sockets_opened],
        "sockets_closed": [socket_state(s) for s in changes.sockets_closed],
        "sockets_changed": [
            {
                "socket_id": c.socket_id,
                "before": socket_state(c.before),
                "after": socket_state(c.after),
            }
            for c in changes.sockets_changed
        ],
        "fields": [_field(c) for c in changes.fields],
    }


def forked(made: Forked) -> dict[str, Any]:
    source = made.source
    return {
        "object_id": made.object_id,
        "binding": made.binding,
        "name": made.name,
        "seq": made.seq,
        "source": {"object_id": source.object_id, "binding": source.binding, "name": source.name},
        "by": made.by,
        "keys": made.keys,
        "alarm_ms": made.alarm_ms,
    }


def dumps(shape: dict[str, Any]) -> str:
    """One line of JSON: non-ASCII kept, no spaces, key order as built."""
    return json.dumps(shape, ensure_ascii=False, separators=(",", ":"))


def _field(change: FieldChange) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if change.name == "auto_response" and value is not None:
            return {"request": value[0], "response": value[1]}
        return value

    return {"name": change.name, "old": plain(change.old), "new": plain(change.new)}


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
