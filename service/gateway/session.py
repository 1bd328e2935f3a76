"""The read loop of one client connection: frames, auto-responses, and how it ended."""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from service.gateway.registry import SocketEntry, SocketRegistry
from service.runtime.delivery import Delivery
from service.runtime.host import DISCONNECTED_REASON, Runtime

log = logging.getLogger(__name__)


def _clean(text: str) -> str:
    """Close reasons and errors end up in jsonb, which cannot hold NUL."""
    return text.replace("\x00", "\ufffd")


async def read_loop(
    entry: SocketEntry, ws: web.WebSocketResponse, registry: SocketRegistry, runtime: Runtime
) -> None:
    """Deliver every frame to the object until the connection ends; report how it ended.

    However the loop ends (even cancelled, when aiohttp drops a vanished client's handler),
    the object hears of it exactly once.
    """
    object_id = entry.object_id
    try:
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT:
                if not registry.auto_response(entry, msg.data):
                    runtime.deliver(object_id, Delivery("message", entry.socket_id, msg.data))
            elif kind is WSMsgType.BINARY:
                runtime.deliver(object_id, Delivery("message", entry.socket_id, msg.data))
            elif kind is WSMsgType.CLOSE:
                # aiohttp has already answered the Close frame (auto-reply to close).
                reason = _clean(msg.extra or "")
                finish(entry, runtime, _closed(entry, msg.data or 1005, reason, True))
                return
            elif kind in _ENDED and entry.close_sent_with is not None:
                break  # the object closed it: reported below
            elif kind is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                error = Delivery(
                    "error", entry.socket_id, error=_clean(str(msg.data)), code=msg.data.code
                )
                finish(entry, runtime, error)
                return
            else:
                break
    except Exception as error:  # a dropped connection surfaces differently by platform
        log.debug("connection lost: %r", error, extra={"object_id": object_id})
    finally:
        if entry.close_sent_with is not None:
            # The object closed the socket: aiohttp writes the Close frame and ends the
            # connection (without reading the peer's answer while a read is pending, and the
            # handler may be cancelled meanwhile); the close handler gets what the object sent.
            code, reason = entry.close_sent_with
            finish(entry, runtime, _closed(entry, code, reason, True))
        else:
            finish(entry, runtime, _closed(entry, 1006, DISCONNECTED_REASON, False))


#: What receive() returns once a close is under way or done.
_ENDED = frozenset({WSMsgType.CLOSING, WSMsgType.CLOSED})


def _closed(entry: SocketEntry, code: int, reason: str, was_clean: bool) -> Delivery:
    return Delivery("close", entry.socket_id, code=code, reason=reason, was_clean=was_clean)


def finish(entry: SocketEntry, runtime: Runtime, delivery: Delivery) -> None:
    """Report the end of a connection to its object, once."""
    if entry.ended:
        return
    entry.ended = True
    runtime.deliver(entry.object_id, delivery)
