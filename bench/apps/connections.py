"""Rooms of idle hibernatable sockets for the connections benchmark.

Each socket is accepted with ``ctx.accept_websocket`` (a durable event), and every room sets
the ``ping`` -> ``pong`` auto-response in its constructor, so that the gateway answers pings
while the room is hibernated. ``/debug/heap`` runs a full garbage collection in the node and
answers with heap figures (objects tracked by the collector, by type; asyncio tasks).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from bench.baseline_server import heap_figures
from service import (
    Application,
    DurableObject,
    DurableObjectState,
    Env,
    Request,
    Response,
    WebSocket,
    WebSocketPair,
    WebSocketRequestResponsePair,
)


class Room(DurableObject):
    """One room: accept hibernatable sockets; the gateway answers their pings."""

    def __init__(self, ctx: DurableObjectState, env: Env) -> None:
        super().__init__(ctx, env)
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: Request) -> Response:
        """Accept a WebSocket into the room."""
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        """Echo anything but the auto-response's ``ping`` (which never reaches the room)."""
        ws.send(message)


async def route(request: Request, env: Env) -> Response:
    """``/room/<name>`` to that room (as the default routing would); ``/debug/heap``."""
    segments = [unquote(s) for s in urlsplit(request.url).path.strip("/").split("/")]
    if segments == ["debug", "heap"]:
        return Response.from_json(heap_figures())
    if len(segments) == 2 and segments[0] == "room" and segments[1]:
        stub = env.ROOM.get_by_name(segments[1])
        response: Response = await stub.fetch(request)
        return response
    return Response("Not found: use /room/<name>", status=404)


app = Application({"ROOM": Room}, fetch=route)
