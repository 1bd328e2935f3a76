"""Snapshot encoding: an object's state as one JSON document, and back.

A snapshot at ``seq`` equals the fold of events 1..seq; replay starts from the newest one,
so waking an object costs the events since its last snapshot, not its whole history.
"""

from __future__ import annotations

import json
from typing import Any

from sortedcontainers import SortedDict

from service.events.fold import ObjectState, SocketState

#: Format version of the snapshot document.
FORMAT = 1


def encode(state: ObjectState) -> str:
    """The state as JSON text, ready for ``snapshots.state``."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "seq": state.seq,
        "storage": dict(state.storage),
        "sockets": [
            {
                "socket_id": socket.socket_id,
                "tags": list(socket.tags),
                "hibernatable": socket.hibernatable,
                "attachment": socket.attachment,
                "url": socket.url,
                "protocol": socket.protocol,
                "close_sent": socket.close_sent,
            }
            for socket in state.sockets.values()
        ],
        "auto_response": list(state.auto_response) if state.auto_response else None,
        "event_timeout_ms": state.event_timeout_ms,
        "alarm_ms": state.alarm_ms,
        "messages": state.messages,
        "pending_restore": state.pending_restore,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def decode(text: str | dict[str, Any]) -> ObjectState:
    """Rebuild the state a snapshot holds."""
    document = json.loads(text) if isinstance(text, str) else text
    if document.get("format") != FORMAT:
        raise ValueError(f"unknown snapshot format {document.get('format')!r}")
    state = ObjectState(seq=document["seq"], storage=SortedDict(document["storage"]))
    for item in document["sockets"]:
        socket = SocketState(
            socket_id=item["socket_id"],
            tags=tuple(item["tags"]),
            hibernatable=item["hibernatable"],
            attachment=item["attachment"],
            url=item.get("url"),
            protocol=item.get("protocol"),
            close_sent=item.get("close_sent", False),
        )
        state.sockets[socket.socket_id] = socket
        for tag in socket.tags:
            state.tag_index.setdefault(tag, {})[socket.socket_id] = None
    auto = document.get("auto_response")
    state.auto_response = (auto[0], auto[1]) if auto else None
    state.event_timeout_ms = document.get("event_timeout_ms")
    state.alarm_ms = document.get("alarm_ms")
    state.messages = document.get("messages", 0)
    # Snapshots written before restores existed have no such field.
    state.pending_restore = document.get("pending_restore")
    return state


def comparable(state: ObjectState) -> dict[str, Any]:
    """A plain dict of the state, for asserting that replay equals live."""
    return dict(json.loads(encode(state)))
