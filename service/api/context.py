"""``ctx``: the object's state, its hibernatable sockets and its settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, NoReturn

from service.api import published, websocket
from service.api.core import ObjectCore
from service.api.errors import DurableObjectError
from service.api.ids import DurableObjectId
from service.api.storage import Storage
from service.api.text import check_text
from service.api.websocket import WebSocket, WebSocketRequestResponsePair
from service.events import types


class DurableObjectState:
    """What the object's constructor receives as ``ctx``."""

    def __init__(self, core: ObjectCore) -> None:
        self._core = core
        self.id: DurableObjectId = core.object_id
        self.storage = Storage(core)

    # -- hibernatable sockets -----------------------------------------------------------

    def accept_websocket(
        self, ws: WebSocket, tags: Iterable[str] | None = None, *, resume_after: int | None = None
    ) -> None:
        """Accept ``ws`` for hibernation: its events go to the class handlers.

        With ``resume_after`` (the seq of the last published message a reconnecting client
        saw), the socket first gets every message published after it that its tags select,
        read from the log, then what is sent to it: none missed, none twice (see
        ``publish``).
        """
        if resume_after is not None and (
            not isinstance(resume_after, int) or isinstance(resume_after, bool)
        ):
            raise TypeError(f"resume_after must be an int, not {type(resume_after).__name__}.")
        if resume_after is not None and resume_after < 0:
            raise ValueError(f"resume_after must not be negative: {resume_after}.")
        if not isinstance(ws, WebSocket):
            raise TypeError("accept_websocket() expects the server end of a WebSocketPair.")
        if websocket.mode_of(ws) is not None:
            raise DurableObjectError(
                "Cannot call `acceptWebSocket()` if the WebSocket was already accepted via "
                "`accept()`"
            )
        if not websocket.peer_waiting(ws):
            raise DurableObjectError(
                "Cannot call `acceptWebSocket()` on this WebSocket because its pair has already "
                "been accepted or used in a Response."
            )
        distinct = self._check_tags(tags)
        limits = self._core.limits
        hibernatable = sum(1 for s in self._core.state.sockets.values() if s.hibernatable)
        if hibernatable >= limits.max_websockets:
            raise DurableObjectError(
                f"only {limits.max_websockets} websockets can be accepted on a single Durable "
                "Object instance"
            )
        last_seq = self._core.state.seq
        websocket.accept_hibernatable(ws, self._core, distinct)
        if resume_after is not None:
            self._core.resume(ws.id, resume_after, last_seq)

    def _check_tags(self, tags: Iterable[str] | None) -> list[str]:
        if tags is None:
            return []
        if isinstance(tags, str):
            raise TypeError("tags must be a list of strings, not a string.")
        limits = self._core.limits
        distinct: dict[str, None] = {}
        for tag in tags:
            # As in workerd, the count is checked before each element, duplicates included.
            if len(distinct) >= limits.max_tags:
                raise DurableObjectError(
                    f"a Hibernatable WebSocket cannot have more than {limits.max_tags} tags"
                )
            if not isinstance(tag, str):
                raise TypeError(f"WebSocket tags must be strings, not {type(tag).__name__}.")
            if len(check_text(tag, "WebSocket tags")) > limits.max_tag_bytes:
                raise DurableObjectError(
                    f'"{tag}" is longer than the max tag length '
                    f"({limits.max_tag_bytes} characters)."
                )
            distinct[tag] = None
        return list(distinct)

    def get_websockets(self, tag: str | None = None) -> list[WebSocket]:
        """Hibernatable sockets (with ``tag``, if given), in the order they were accepted."""
        state = self._core.state
        if tag is None:
            ids: Iterable[str] = (s.socket_id for s in state.sockets.values() if s.hibernatable)
        else:
            ids = state.tag_index.get(tag, {})
        return [websocket.handle_of(self._core, socket_id) for socket_id in ids]

    def get_tags(self, ws: WebSocket) -> list[str]:
        mode = websocket.mode_of(ws)
        if mode == "standard":
            raise DurableObjectError("only hibernatable websockets can have tags.")
        socket = self._core.state.sockets.get(ws.id)
        if mode is None or websocket.is_released(ws) or socket is None:
            raise DurableObjectError(
                "you must call 'acceptWebSocket()' before attempting to access the tags of a "
                "WebSocket."
            )
        return list(socket.tags)

    # -- published messages -----------------------------------------------------------

    def publish(self, data: Any, tag: str | None = None) -> int:
        """Record ``data`` once in the log and send it to every open hibernatable socket
        (those with ``tag``, if given); return its seq, the message's position.

        ``data`` is bytes or what JSON can hold; it is copied now. Sockets get it once the
        turn's events are committed, in order with everything else sent. A client that
        reconnects with the last seq it saw gets what it missed (``accept_websocket``'s
        ``resume_after``).
        """
        if tag is not None:
            if not isinstance(tag, str):
                raise TypeError(f"publish() tag must be a string, not {type(tag).__name__}.")
            check_text(tag, "A publish tag")
        event = published.event(data, tag)
        seq = self._core.state.seq + 1
        frame = published.frame(seq, event)
        limit = self._core.limits.max_message_bytes
        size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8"))
        if size > limit:
            raise ValueError(
                f"A published message cannot be larger than {limit} bytes. "
                f"A message of size {size} was provided."
            )
        targets = [ws.id for ws in self.get_websockets(tag) if ws.ready_state == WebSocket.OPEN]
        return self._core.publish(event, frame, targets)

    # -- auto-response and event timeout ------------------------------------------------

    def set_websocket_auto_response(self, pair: WebSocketRequestResponsePair | None = None) -> None:
        """Answer a text frame equal to ``pair.request`` without waking the object."""
        if pair is None:
            if self._core.state.auto_response is not None:
                self._core.record(types.AutoResponseSet())
            return
        if not isinstance(pair, WebSocketRequestResponsePair):
            raise TypeError("set_websocket_auto_response() expects a WebSocketRequestResponsePair.")
        limit = self._core.limits.max_auto_response_bytes
        for label, text in (("Request", pair.request), ("Response", pair.response)):
            size = len(check_text(text, f"The auto-response {label.lower()}"))
            if size > limit:
                raise ValueError(
                    f"{label} cannot be larger than {limit} bytes. "
                    f"A {label.lower()} of size {size} was provided."
                )
        if self._core.state.auto_response != (pair.request, pair.response):
            self._core.record(types.AutoResponseSet(request=pair.request, response=pair.response))

    def get_websocket_auto_response(self) -> WebSocketRequestResponsePair | None:
        auto = self._core.state.auto_response
        return WebSocketRequestResponsePair(*auto) if auto else None

    def get_websocket_auto_response_timestamp(self, ws: WebSocket) -> datetime | None:
        """When ``ws`` was last answered by the auto-response, or None."""
        return self._core.auto_response_timestamp(ws.id)

    def set_hibernatable_websocket_event_timeout(self, ms: int | None = None) -> None:
        limit = self._core.limits.max_event_timeout_ms
        if ms is not None and ms > limit:
            raise DurableObjectError(f"Event timeout should not exceed {limit} ms.")
        if ms is not None and ms < 0:
            raise ValueError("Event timeout must not be negative.")
        value = ms or None
        if value != self._core.state.event_timeout_ms:
            self._core.record(types.EventTimeoutSet(ms=value))

    def get_hibernatable_websocket_event_timeout(self) -> int | None:
        return self._core.state.event_timeout_ms

    # -- lifecycle ----------------------------------------------------------------------

    def block_concurrency_while(
        self, callback: Callable[[], Awaitable[Any]]
    ) -> asyncio.Future[Any]:
        """Run ``callback`` before any other event is delivered; await it for its result.

        Works from the (synchronous) constructor too: the first delivery waits for it.
        """
        return self._core.block_concurrency_while(callback)

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Keep the object from hibernating until ``awaitable`` settles."""
        self._core.wait_until(awaitable)

    def abort(self, reason: str | None = None) -> NoReturn:
        """Reset the object now: uncommitted writes and held frames are discarded."""
        self._core.abort(reason)
