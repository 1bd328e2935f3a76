"""An object's state and the fold that builds it: ``state = apply(state, event)``.

The fold is the definition of state: live objects apply each event as they record it, and
replay applies the same events to a snapshot. ``apply`` updates the state in place and
returns it (copying a large keyspace per event would make replay quadratic); callers that
need to take an event back use ``undo_of`` before applying it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedDict

from service.events import bookmarks, types


@dataclass(slots=True)
class SocketState:
    """What survives hibernation for one socket (workerd's HibernationPackage)."""

    socket_id: str
    tags: tuple[str, ...] = ()
    hibernatable: bool = True
    #: Encoded attachment, or None when none was set.
    attachment: Any = None
    url: str | None = None
    protocol: str | None = None
    #: The object called close(); sends now fail and auto-responses stop.
    close_sent: bool = False


@dataclass
class ObjectState:
    """Everything the log says about one object."""

    #: seq of the last event folded in (0 for a new object).
    seq: int = 0
    #: key -> encoded value, sorted by key (UTF-8 byte order equals code point order).
    storage: SortedDict = field(default_factory=SortedDict)
    #: Open sockets in accept order.
    sockets: dict[str, SocketState] = field(default_factory=dict)
    #: tag -> socket ids carrying it, in accept order.
    tag_index: dict[str, dict[str, None]] = field(default_factory=dict)
    auto_response: tuple[str, str] | None = None
    event_timeout_ms: int | None = None
    alarm_ms: int | None = None
    #: Inbound messages recorded so far.
    messages: int = 0
    #: The bookmark of a restore requested and not done yet: the next activation does it.
    pending_restore: str | None = None


Undo = Callable[[ObjectState], None]


def restore_to(target: ObjectState, by: str | None = None) -> types.StorageRestored:
    """The event that puts an object's storage and alarm back as they are in ``target``,
    its state after event ``target.seq`` (``by``: the operator who asked, if not the
    object itself)."""
    return types.StorageRestored(
        bookmark=bookmarks.of_seq(target.seq),
        from_seq=target.seq,
        storage=dict(target.storage),
        alarm_ms=target.alarm_ms,
        by=by,
    )


def apply(state: ObjectState, event: types.Event) -> ObjectState:
    """Fold one event into ``state`` (in place) and return it."""
    _APPLY[type(event)](state, event)
    state.seq += 1
    return state


def _accepted(state: ObjectState, event: types.WebSocketAccepted) -> None:
    state.sockets[event.socket_id] = SocketState(
        socket_id=event.socket_id,
        tags=tuple(event.tags),
        hibernatable=event.hibernatable,
        url=event.url,
        protocol=event.protocol,
    )
    for tag in event.tags:
        state.tag_index.setdefault(tag, {})[event.socket_id] = None


def _attachment(state: ObjectState, event: types.AttachmentSet) -> None:
    socket = state.sockets.get(event.socket_id)
    if socket is not None:
        socket.attachment = event.attachment


def _close_sent(state: ObjectState, event: types.CloseSent | types.OperatorCloseSent) -> None:
    socket = state.sockets.get(event.socket_id)
    if socket is not None:
        socket.close_sent = True


def _remove_socket(state: ObjectState, socket_id: str) -> None:
    socket = state.sockets.pop(socket_id, None)
    if socket is None:
        return
    for tag in socket.tags:
        members = state.tag_index.get(tag)
        if members is not None:
            members.pop(socket_id, None)
            if not members:
                del state.tag_index[tag]


def _closed(state: ObjectState, event: types.WebSocketClosed) -> None:
    _remove_socket(state, event.socket_id)


def _errored(state: ObjectState, event: types.WebSocketErrored) -> None:
    _remove_socket(state, event.socket_id)


def _message(state: ObjectState, event: types.MessageReceived) -> None:
    state.messages += 1


def _inbound(state: ObjectState, event: types.RequestReceived | types.AlarmFired) -> None:
    """A request or an alarm run changes no state: what it caused follows as events."""


def _published(state: ObjectState, event: types.MessagePublished) -> None:
    """A published message changes no state: it lives in the log, where resumes read it."""


def _operator_sent(state: ObjectState, event: types.OperatorMessageSent) -> None:
    """A frame an operator sent changes no state: the log keeps it for the audit."""


def _put(state: ObjectState, event: types.StoragePut) -> None:
    state.storage.update(event.entries)


def _deleted(state: ObjectState, event: types.StorageDeleted) -> None:
    for key in event.keys:
        state.storage.pop(key, None)


def _cleared(state: ObjectState, event: types.StorageCleared) -> None:
    state.storage.clear()
    state.alarm_ms = None


def _auto_response(state: ObjectState, event: types.AutoResponseSet) -> None:
    if event.request is None or event.response is None:
        state.auto_response = None
    else:
        state.auto_response = (event.request, event.response)


def _event_timeout(state: ObjectState, event: types.EventTimeoutSet) -> None:
    state.event_timeout_ms = event.ms


def _alarm_set(state: ObjectState, event: types.AlarmSet) -> None:
    state.alarm_ms = event.scheduled_ms


def _alarm_deleted(state: ObjectState, event: types.AlarmDeleted) -> None:
    state.alarm_ms = None


def _restore_requested(state: ObjectState, event: types.RestoreRequested) -> None:
    state.pending_restore = event.bookmark


def _storage_restored(state: ObjectState, event: types.StorageRestored) -> None:
    state.storage = SortedDict(event.storage)
    state.alarm_ms = event.alarm_ms
    state.pending_restore = None


def _forked(state: ObjectState, event: types.ObjectForked) -> None:
    state.storage = SortedDict(event.storage)
    state.auto_response = event.auto_response
    state.event_timeout_ms = event.event_timeout_ms
    state.alarm_ms = event.alarm_ms


def _rpc(state: ObjectState, event: types.RpcCalled | types.RpcReturned) -> None:
    """A call and its outcome change no state: what the method wrote follows as events."""


_APPLY: dict[type, Callable[[ObjectState, Any], None]] = {
    types.WebSocketAccepted: _accepted,
    types.AttachmentSet: _attachment,
    types.CloseSent: _close_sent,
    types.WebSocketClosed: _closed,
    types.WebSocketErrored: _errored,
    types.MessageReceived: _message,
    types.RequestReceived: _inbound,
    types.AlarmFired: _inbound,
    types.MessagePublished: _published,
    types.StoragePut: _put,
    types.StorageDeleted: _deleted,
    types.StorageCleared: _cleared,
    types.AutoResponseSet: _auto_response,
    types.EventTimeoutSet: _event_timeout,
    types.AlarmSet: _alarm_set,
    types.AlarmDeleted: _alarm_deleted,
    types.RestoreRequested: _restore_requested,
    types.StorageRestored: _storage_restored,
    types.OperatorCloseSent: _close_sent,
    types.OperatorMessageSent: _operator_sent,
    types.ObjectForked: _forked,
    types.RpcCalled: _rpc,
    types.RpcReturned: _rpc,
}


def undo_of(state: ObjectState, event: types.Event) -> Undo:
    """Capture what ``apply(state, event)`` will overwrite; calling the result restores it.

    Undos must be run in reverse order of capture. They let a handler that raised leave
    no trace without rebuilding the object from its log.
    """
    seq = state.seq
    restore = _capture(state, event)

    def undo(target: ObjectState) -> None:
        restore(target)
        target.seq = seq

    return undo


def _capture(state: ObjectState, event: types.Event) -> Undo:
    kind = event.type  # isinstance on pydantic models goes through ABCMeta: slow per event
    if kind == "message_published" or kind == "operator_message_sent":
        return _unchanged
    if kind == "message_received":
        messages = state.messages

        def restore_count(target: ObjectState) -> None:
            target.messages = messages

        return restore_count
    if kind == "request_received" or kind == "alarm_fired":
        return _unchanged
    if kind == "rpc_called" or kind == "rpc_returned":
        return _unchanged
    if isinstance(event, types.StoragePut | types.StorageDeleted):
        keys = event.entries if isinstance(event, types.StoragePut) else event.keys
        missing = object()
        old = {key: state.storage.get(key, missing) for key in keys}

        def restore_keys(target: ObjectState) -> None:
            for key, value in old.items():
                if value is missing:
                    target.storage.pop(key, None)
                else:
                    target.storage[key] = value

        return restore_keys
    if isinstance(event, types.StorageCleared | types.StorageRestored | types.ObjectForked):
        storage, fields = SortedDict(state.storage), _fields_of(state)

        def restore_all(target: ObjectState) -> None:
            target.storage = storage
            _restore_fields(target, fields)

        return restore_all
    return _capture_socket(state, event)


def _capture_socket(state: ObjectState, event: types.Event) -> Undo:
    """The undo of a socket event, or else of one that sets an object-wide field."""
    if isinstance(event, types.WebSocketAccepted):
        socket_id = event.socket_id
        return lambda target: _remove_socket(target, socket_id)
    if isinstance(event, types.WebSocketClosed | types.WebSocketErrored):
        closing = state.sockets.get(event.socket_id)
        if closing is None:
            return lambda target: None
        position = list(state.sockets).index(closing.socket_id)
        return lambda target: _reinsert(target, closing, position)
    if isinstance(event, types.AttachmentSet | types.CloseSent | types.OperatorCloseSent):
        socket = state.sockets.get(event.socket_id)
        if socket is None:
            return lambda target: None
        attachment, close_sent = socket.attachment, socket.close_sent

        def restore_socket(target: ObjectState) -> None:
            socket.attachment, socket.close_sent = attachment, close_sent

        return restore_socket
    fields = _fields_of(state)
    return lambda target: _restore_fields(target, fields)


_Fields = tuple[tuple[str, str] | None, int | None, int | None, int, str | None]


def _fields_of(state: ObjectState) -> _Fields:
    """The state's single-valued fields, for an undo to put back."""
    return (
        state.auto_response,
        state.event_timeout_ms,
        state.alarm_ms,
        state.messages,
        state.pending_restore,
    )


def _restore_fields(target: ObjectState, fields: _Fields) -> None:
    (
        target.auto_response,
        target.event_timeout_ms,
        target.alarm_ms,
        target.messages,
        target.pending_restore,
    ) = fields


def _unchanged(target: ObjectState) -> None:
    """The undo of an event that changed nothing but the seq (restored by ``undo_of``)."""


def _reinsert(state: ObjectState, socket: SocketState, position: int) -> None:
    items = list(state.sockets.items())
    items.insert(position, (socket.socket_id, socket))
    state.sockets = dict(items)
    for tag in socket.tags:
        members = state.tag_index.setdefault(tag, {})
        members[socket.socket_id] = None
    # Restore accept order inside each tag, which re-insertion at the end would lose.
    for tag in socket.tags:
        members = state.tag_index[tag]
        state.tag_index[tag] = {sid: None for sid in state.sockets if sid in members}
