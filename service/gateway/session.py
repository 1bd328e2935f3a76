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
    """Deliver every frame to the object until the connection ends; report how it ended."""
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
                code = msg.data or 1005
                finish(
                    entry,
                    runtime,
                    Delivery(
                        "close",
                        entry.socket_id,
                        code=code,
                        reason=_clean(msg.extra or ""),
                        was_clean=True,
                    ),
                )
                return
            elif kind is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                finish(
                    entry,
                    runtime,
                    Delivery(
                        "error", entry.socket_id, error=_clean(str(msg.data)), code=msg.data.code
                    ),
                )
                return
            else:
                break
    except Exception as error:  # a dropped connection surfaces differently by platform
        log.debug("connection lost: %r", error, extra={"object_id": object_id})
    finish(
        entry,
        runtime,
        Delivery("close", entry.socket_id, code=1006, reason=DISCONNECTED_REASON, was_clean=False),
    )


def finish(entry: SocketEntry, runtime: Runtime, delivery: Delivery) -> None:
    """Report the end of a connection to its object, once."""
    if entry.ended:
        return
    entry.ended = True
    runtime.deliver(entry.object_id, delivery)
