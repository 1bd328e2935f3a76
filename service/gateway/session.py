"""One client connection's life: the upgrade, every frame (auto-responses answered here),
and how it ended."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMessage, WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from service.gateway import keys
from service.gateway.frame_guard import GuardedWebSocketResponse
from service.gateway.registry import LINGER_SECONDS, SocketEntry, SocketRegistry
from service.ports.socket_events import DISCONNECTED_REASON, SocketEvents

log = logging.getLogger(__name__)


def _clean(text: str) -> str:
    """Close reasons and errors end up in jsonb, which cannot hold NUL."""
    return text.replace("\x00", "\ufffd")


async def upgrade(
    request: web.Request, socket_id: str, protocol: str | None
) -> tuple[SocketEntry, GuardedWebSocketResponse] | web.Response:
    """Complete a 101 for the socket the object accepted; an error response if it cannot be.

    The caller then reads the connection with ``receive`` until it returns False, in its own
    coroutine: that one frame, suspended for as long as the socket is open (hibernated or
    not), is all the stack a node keeps per socket.
    """
    registry = request.app[keys.REGISTRY]
    node = request.app[keys.NODE]
    entry = registry.entries.get(socket_id)
    if entry is None:
        return web.Response(status=500, text="The accepted WebSocket is unknown to the gateway.")
    ws = GuardedWebSocketResponse(
        max_message_bytes=request.app[keys.LIMITS].max_message_bytes,
        # A client's Close frame is answered by reply_to_close, which echoes its code.
        autoclose=False,
        compress=request.app[keys.COMPRESSION],
        autoping=True,  # a client's Ping is answered; a Pong only counts as a sign of life
        protocols=(protocol,) if protocol else (),
    )
    if not ws.can_prepare(request).ok:
        ended(entry, registry, node)
        return web.Response(status=426, text="Expected Upgrade: websocket")
    try:
        await ws.prepare(request)
    except ConnectionResetError:
        # The client left while its object accepted the socket (an upgrade routed to another
        # node waits for the owner's reply): the object hears that it closed (1006), and
        # the answer goes nowhere.
        ended(entry, registry, node)
        log.info(
            "the client left before its WebSocket opened", extra={"object_id": entry.object_id}
        )
        return web.Response(status=400, text="The client left before the WebSocket opened.")
    except BaseException:  # cancelled too (the client vanished): the object hears of it
        ended(entry, registry, node)
        raise
    registry.attach(socket_id, ws, request.transport)
    return entry, ws


def receive(
    entry: SocketEntry, msg: WSMessage, registry: SocketRegistry, node: SocketEvents
) -> bool:
    """Deliver one frame (or answer it with the auto-response); False once reading is over."""
    kind = msg.type
    if kind is WSMsgType.TEXT:
        if not registry.auto_response(entry, msg.data):
            node.message(entry.object_id, entry.socket_id, msg.data)
        return True
    if kind is WSMsgType.BINARY:
        node.message(entry.object_id, entry.socket_id, msg.data)
        return True
    if kind is WSMsgType.CLOSE:
        # Answered by reply_to_close, then reported by ended().
        entry.close_received = (msg.data or 1005, msg.extra or "")
    elif kind is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
        # aiohttp has sent the Close frame, with this text as its reason.
        assert entry.ws is not None
        text = _clean(entry.ws.describe(msg.data))
        if _first_end(entry):
            node.errored(entry.object_id, entry.socket_id, text, msg.data.code)
    # Anything else (CLOSING, CLOSED, an error of the transport) ends it: see ended().
    return False


#: Codes a Close frame never carries (RFC 6455, section 7.4.1): an echo sends 1000 instead.
_NOT_SENT = frozenset({1005, 1006, 1015})


async def reply_to_close(entry: SocketEntry) -> None:
    """Answer the client's Close frame with its own code and reason (RFC 6455, section
    5.5.1), as the reference's automatic reply does; an empty one is answered with 1000."""
    ws = entry.ws
    if entry.close_received is None or entry.close_sent_with is not None or ws is None:
        return  # the gateway closed first: its Close frame was the answer
    code, reason = entry.close_received
    if code in _NOT_SENT:
        code, reason = 1000, ""
    # The client is likely to drop the connection once answered: nothing is drained.
    await ws.close(code=code, message=reason.encode("utf-8"), drain=False)


def ended(entry: SocketEntry, registry: SocketRegistry, node: SocketEvents) -> None:
    """The connection is over, however it ended (even cancelled, when aiohttp drops a vanished
    client's handler): the object hears of it exactly once, and the entry goes."""
    if entry.close_sent_with is not None:
        # The gateway closed first (for the object, or giving up on a client that does not
        # read): aiohttp writes the Close frame and ends the connection, without reading the
        # peer's answer while a read is pending, and the handler may be cancelled meanwhile.
        # The close handler gets what was sent.
        code, reason, was_clean = entry.close_sent_with
        finish(entry, node, code, reason, was_clean)
    elif entry.close_received is not None:
        code, reason = entry.close_received
        finish(entry, node, code, _clean(reason), True)
    else:
        finish(entry, node, 1006, DISCONNECTED_REASON, False)
    registry.remove(entry.socket_id)
    transport = entry.transport
    if transport is not None:
        # Closing a transport waits until its buffer is flushed, which a peer that stopped
        # reading never allows: past a short grace, the connection is dropped.
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.abort)


def finish(
    entry: SocketEntry, events: SocketEvents, code: int, reason: str, was_clean: bool
) -> None:
    """Report the close of a connection to its object, unless its end was reported."""
    if _first_end(entry):
        events.closed(entry.object_id, entry.socket_id, code, reason, was_clean)


def _first_end(entry: SocketEntry) -> bool:
    """Whether this is the first report of the connection's end (each is reported once)."""
    if entry.ended:
        return False
    entry.ended = True
    return True
