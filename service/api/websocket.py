"""Server-side WebSocket handles, pairs, and the auto-response pair."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from service.api import core as core_module
from service.api.errors import DurableObjectError, InvalidAccessError
from service.api.text import check_text
from service.events import types, values

ListenerType = Literal["message", "close", "error"]

_MISSING = object()
_INVALID_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})


def sendable_close_code(code: int) -> bool:
    """Whether a Close frame may carry ``code`` (1000 to 4999, but for the codes that only
    describe a connection's end: 1004, 1005, 1006 and 1015)."""
    return 1000 <= code <= 4999 and code not in _INVALID_CLOSE_CODES


@dataclass(frozen=True)
class MessageEvent:
    """Passed to "message" listeners of a standard (non-hibernatable) socket."""

    data: str | bytes


@dataclass(frozen=True)
class CloseEvent:
    """Passed to "close" listeners."""

    code: int
    reason: str
    was_clean: bool


@dataclass(frozen=True)
class ErrorEvent:
    """Passed to "error" listeners."""

    error: Exception


_LISTENER_TYPES = frozenset({"message", "close", "error"})


class WebSocket:
    """One end of a WebSocketPair; the server end is what the object keeps and talks to."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3

    # Fixed slots keep a handle small (an object may hold thousands); "__dict__" still lets
    # user code hang its own attributes on a socket, and costs nothing until it does.
    __slots__ = (
        "__dict__",
        "_closed_outgoing",
        "_core",
        "_id",
        "_in_response",
        "_listeners",
        "_mode",
        "_peer",
        "_pending_attachment",
        "_ready_state",
        "_released",
    )

    def __init__(self, socket_id: str, core: core_module.ObjectCore | None) -> None:
        self._id = socket_id
        self._core = core
        self._peer: WebSocket | None = None
        #: None until accepted; then "hibernatable" or "standard".
        self._mode: str | None = None
        self._in_response = False
        self._ready_state = WebSocket.CONNECTING
        self._closed_outgoing = False
        self._released = False
        self._pending_attachment: Any = _MISSING
        #: Listeners by event type, made on the first add_event_listener: hibernatable
        #: sockets never have any, and an object may hold thousands of handles.
        self._listeners: dict[str, list[Callable[[Any], Any]]] | None = None

    @classmethod
    def _restored(cls, core: core_module.ObjectCore, socket_id: str) -> WebSocket:
        """A handle for a socket accepted before the object last hibernated."""
        handle = cls(socket_id, core)
        socket = core.state.sockets[socket_id]
        handle._mode = "hibernatable" if socket.hibernatable else "standard"
        handle._closed_outgoing = socket.close_sent
        handle._ready_state = WebSocket.CLOSING if socket.close_sent else WebSocket.OPEN
        return handle

    @property
    def id(self) -> str:
        """The socket's id: the key of its row in the ``websockets`` table."""
        return self._id

    @property
    def ready_state(self) -> int:
        return self._ready_state

    @property
    def url(self) -> str | None:
        socket = self._core.state.sockets.get(self._id) if self._core else None
        return socket.url if socket else None

    # -- the standard API ---------------------------------------------------------------

    def accept(self) -> None:
        """Accept with the standard API: events go to listeners; the object cannot hibernate."""
        if self._mode == "hibernatable":
            raise TypeError("Can't accept() WebSocket after enabling hibernation.")
        if self._mode == "standard":
            return
        if self._core is None:
            raise DurableObjectError("This WebSocket does not belong to a Durable Object.")
        self._mark_accepted("standard")
        self._core.record(
            types.WebSocketAccepted(
                socket_id=self._id, hibernatable=False, url=self._core.current_url
            )
        )
        self._after_accept()

    def add_event_listener(self, event_type: ListenerType, listener: Callable[[Any], Any]) -> None:
        """Listen for "message", "close" or "error"; never fires on hibernatable sockets."""
        if event_type not in _LISTENER_TYPES:
            raise TypeError(f"Unknown WebSocket event type: {event_type!r}")
        if self._listeners is None:
            self._listeners = {}
        self._listeners.setdefault(event_type, []).append(listener)

    def remove_event_listener(
        self, event_type: ListenerType, listener: Callable[[Any], Any]
    ) -> None:
        listeners = (self._listeners or {}).get(event_type, [])
        if listener in listeners:
            listeners.remove(listener)

    def _listeners_of(self, event_type: str) -> list[Callable[[Any], Any]]:
        """A copy of the listeners for ``event_type`` (they may change while they run)."""
        return list((self._listeners or {}).get(event_type, ()))

    # -- sending and closing ------------------------------------------------------------

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a frame; it leaves once the events recorded before it are committed."""
        if self._mode is None:
            raise TypeError(
                "You must call one of accept() or state.acceptWebSocket() on this WebSocket "
                "before sending messages."
            )
        if self._closed_outgoing:
            raise TypeError("Can't call WebSocket send() after close().")
        if self._released or self._core is None:
            return
        if isinstance(message, str):
            data: str | bytes = message
        elif isinstance(message, bytes | bytearray | memoryview):
            data = bytes(message)
        else:
            raise TypeError(f"send() takes str or bytes, not {type(message).__name__}.")
        self._core.send(self._id, data)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start the close handshake; a second call, or one after the peer closed, is ignored."""
        if code is None and reason is not None:
            raise InvalidAccessError(
                "If you specify a WebSocket close reason, you must also specify a code."
            )
        if code is not None and (not isinstance(code, int) or not sendable_close_code(code)):
            raise InvalidAccessError(f"Invalid WebSocket close code: {code}.")
        reason = reason or ""
        limit = self._core.limits.max_close_reason_bytes if self._core else 123
        if len(check_text(reason, "A WebSocket close reason")) > limit:
            raise ValueError(
                f"WebSocket close reason must not be longer than {limit} bytes when UTF-8 encoded."
            )
        if self._closed_outgoing or self._released or self._mode is None or self._core is None:
            return
        self._closed_outgoing = True
        self._ready_state = WebSocket.CLOSING
        self._core.record(types.CloseSent(socket_id=self._id, code=code, reason=reason))
        self._core.close_socket(self._id, code, reason)

    # -- attachments --------------------------------------------------------------------

    def serialize_attachment(self, value: Any) -> None:
        """Keep a copy of ``value`` with the socket; it survives hibernation."""
        encoded = values.encode(value)
        size = values.size_of(encoded)
        limit = self._core.limits.max_attachment_bytes if self._core else 16384
        if size > limit:
            raise DurableObjectError(
                f"A WebSocket 'attachment' cannot be larger than {limit} bytes."
                f"'attachment' was {size} bytes."
            )
        if self._mode is None or self._core is None:
            self._pending_attachment = encoded
            return
        if self._released:
            return
        self._core.record(types.AttachmentSet(socket_id=self._id, attachment=encoded))

    def deserialize_attachment(self) -> Any:
        """A fresh copy of the attachment, or None if none was set."""
        if self._mode is None or self._core is None:
            pending = self._pending_attachment
            return None if pending is _MISSING else values.decode(pending)
        socket = self._core.state.sockets.get(self._id)
        if socket is None:
            return None
        return values.decode(socket.attachment)

    # -- used by ctx and the runtime ----------------------------------------------------

    def _mark_accepted(self, mode: str) -> None:
        self._mode = mode
        self._ready_state = WebSocket.OPEN

    def _after_accept(self) -> None:
        assert self._core is not None
        self._core.handles[self._id] = self
        if self._pending_attachment is not _MISSING:
            encoded, self._pending_attachment = self._pending_attachment, _MISSING
            self._core.record(types.AttachmentSet(socket_id=self._id, attachment=encoded))

    def _use_in_response(self) -> None:
        if self._mode == "hibernatable":
            raise TypeError("Can't return WebSocket in a Response after calling acceptWebSocket().")
        self._in_response = True

    def _peer_waiting(self) -> bool:
        peer = self._peer
        return peer is None or (peer._mode is None and not peer._in_response)

    def _closed_by_peer(self) -> None:
        """The connection ended: with auto-reply to Close, the socket is CLOSED already."""
        self._closed_outgoing = True
        self._ready_state = WebSocket.CLOSED

    def _release(self) -> None:
        self._released = True
        self._ready_state = WebSocket.CLOSED

    def __repr__(self) -> str:
        return f"WebSocket(id={self._id!r}, ready_state={self._ready_state})"


# -- the internal surface ------------------------------------------------------------------
# What ctx (service.api.context), a Response and the runtime's handler dispatch may do to a
# handle. WebSocket's state machine (mode, ready state, peer, release) changes only here,
# inside this module; nothing outside it touches a handle's private members.


def handle_of(core: core_module.ObjectCore, socket_id: str) -> WebSocket:
    """The one handle of an accepted socket of ``core``'s object, restored if need be (a
    socket accepted before the object last hibernated has no handle until asked for)."""
    handle: WebSocket | None = core.handles.get(socket_id)
    if handle is None:
        handle = WebSocket._restored(core, socket_id)
        core.handles[socket_id] = handle
    return handle


def mode_of(ws: WebSocket) -> str | None:
    """None until accepted; then "hibernatable" or "standard"."""
    return ws._mode


def is_released(ws: WebSocket) -> bool:
    """The connection ended (closed or errored) and its object was told."""
    return ws._released


def peer_waiting(ws: WebSocket) -> bool:
    """Whether the other end of the pair is neither accepted nor used in a Response yet."""
    return ws._peer_waiting()


def accept_hibernatable(ws: WebSocket, core: core_module.ObjectCore, tags: list[str]) -> None:
    """Accept ``ws`` for hibernation on ``core``'s object (the checks are ctx's)."""
    ws._core = core
    ws._mark_accepted("hibernatable")
    core.record(
        types.WebSocketAccepted(
            socket_id=ws._id, tags=tags, hibernatable=True, url=core.current_url
        )
    )
    ws._after_accept()


def use_in_response(ws: WebSocket) -> None:
    """``ws`` goes back to the client in a 101 Response."""
    ws._use_in_response()


def server_end_accepted(client: WebSocket) -> bool:
    """Whether the server end of ``client``'s pair was accepted (before it is returned)."""
    peer = client._peer
    return peer is not None and peer._mode is not None


def unpair(client: WebSocket) -> None:
    """The pair has served its purpose: the server end lives on as a restored one would, and
    the client end goes with the response instead of staying as long as the socket."""
    peer = client._peer
    if peer is not None:
        peer._peer = None


def closed_by_peer(ws: WebSocket) -> None:
    """The connection ended: with auto-reply to Close, the socket is CLOSED already."""
    ws._closed_by_peer()


def close_started(ws: WebSocket) -> None:
    """An operator closed the socket: the object sees it closing, as after its own close()."""
    if not ws._released:
        ws._closed_outgoing = True
        ws._ready_state = WebSocket.CLOSING


def release(ws: WebSocket) -> None:
    """The socket is gone: send() and close() quietly do nothing from now on."""
    ws._release()


def listeners_of(ws: WebSocket, event_type: str) -> list[Callable[[Any], Any]]:
    """A copy of the listeners for ``event_type`` (they may change while they run)."""
    return ws._listeners_of(event_type)


class WebSocketPair:
    """Two linked sockets: return ``client`` in a 101 Response, keep and accept ``server``."""

    def __init__(self) -> None:
        core = core_module.current_core.get()
        socket_id = core.new_socket_id() if core is not None else uuid.uuid4().hex
        self.client = WebSocket(socket_id, core)
        self.server = WebSocket(socket_id, core)
        self.client._peer, self.server._peer = self.server, self.client

    def __iter__(self) -> Iterator[WebSocket]:
        return iter((self.client, self.server))

    def __getitem__(self, index: int) -> WebSocket:
        return (self.client, self.server)[index]


class WebSocketRequestResponsePair:
    """An auto-response: a text frame equal to ``request`` is answered with ``response``."""

    __slots__ = ("_request", "_response")

    def __init__(self, request: str, response: str) -> None:
        if not isinstance(request, str) or not isinstance(response, str):
            raise TypeError("WebSocketRequestResponsePair takes two strings.")
        self._request = request
        self._response = response

    @property
    def request(self) -> str:
        return self._request

    @property
    def response(self) -> str:
        return self._response

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, WebSocketRequestResponsePair)
            and other._request == self._request
            and other._response == self._response
        )

    def __hash__(self) -> int:
        return hash((self._request, self._response))

    def __repr__(self) -> str:
        return f"WebSocketRequestResponsePair({self._request!r}, {self._response!r})"
