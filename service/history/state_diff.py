"""What changed in an object's state between two points: a pure function of the two states.

The history service feeds it two states rebuilt by the one replay; any front end (the
``durable diff`` command, an admin API) shows the same answer.
"""

from __future__ import annotations

from typing import Any

from service.events.fold import ObjectState, SocketState
from service.ports.history import FieldChange, KeyChange, SocketChange, StateDiff

_MISSING = object()


def diff(before: ObjectState, after: ObjectState) -> StateDiff:
    """The changes that take ``before`` to ``after``: keys in key order, sockets in accept
    order, then the object-wide settings."""
    return StateDiff(
        storage=_storage(before, after),
        sockets_opened=[s for sid, s in after.sockets.items() if sid not in before.sockets],
        sockets_closed=[s for sid, s in before.sockets.items() if sid not in after.sockets],
        sockets_changed=[
            SocketChange(sid, old, after.sockets[sid])
            for sid, old in before.sockets.items()
            if sid in after.sockets and _socket_differs(old, after.sockets[sid])
        ],
        fields=[
            FieldChange(name, old, new)
            for name, old, new in (
                ("auto_response", before.auto_response, after.auto_response),
                ("event_timeout_ms", before.event_timeout_ms, after.event_timeout_ms),
                ("alarm_ms", before.alarm_ms, after.alarm_ms),
                ("messages", before.messages, after.messages),
            )
            if old != new
        ],
    )


def _storage(before: ObjectState, after: ObjectState) -> list[KeyChange]:
    changes: list[KeyChange] = []
    for key in sorted(before.storage.keys() | after.storage.keys()):
        old: Any = before.storage.get(key, _MISSING)
        new: Any = after.storage.get(key, _MISSING)
        if old is _MISSING:
            changes.append(KeyChange(key, "added", None, new))
        elif new is _MISSING:
            changes.append(KeyChange(key, "removed", old, None))
        elif not _same(old, new):
            changes.append(KeyChange(key, "changed", old, new))
    return changes


def _socket_differs(old: SocketState, new: SocketState) -> bool:
    return (
        old.tags != new.tags
        or not _same(old.attachment, new.attachment)
        or old.close_sent != new.close_sent
    )


def _same(a: Any, b: Any) -> bool:
    """Equal encoded values, ``True`` and ``1`` (equal in Python, not in JSON) told apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
