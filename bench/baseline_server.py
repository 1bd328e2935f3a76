"""A bare aiohttp WebSocket broadcast server with no persistence: the round trip's baseline.

``python -m bench.baseline_server --port N`` serves ``/<binding>/<room>`` like the chat
room of ``bench/apps/chat.py`` (every message to every socket in the room) and ``/healthz``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from aiohttp import WSMsgType, web

ROOMS = web.AppKey("rooms", dict[str, set[web.WebSocketResponse]])


async def room(request: web.Request) -> web.WebSocketResponse:
    """Join the room named by the path; broadcast every message to its members."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    members = request.app[ROOMS].setdefault(request.match_info["name"], set())
    members.add(ws)
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                for peer in list(members):
                    await peer.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                for peer in list(members):
                    await peer.send_bytes(message.data)
    finally:
        members.discard(ws)
    return ws


async def healthz(request: web.Request) -> web.Response:
    """Always ready."""
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    """The baseline server's app."""
    app = web.Application()
    app[ROOMS] = {}
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/{binding}/{name}", room)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    args = parser.parse_args(argv)
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
