"""A bare aiohttp WebSocket broadcast server with no persistence: the benchmarks' baseline.

``python -m bench.baseline_server --port N`` serves ``/<binding>/<room>`` like the chat
room of ``bench/apps/chat.py`` (every message to every socket in the room), ``/healthz``,
and ``/debug/heap`` (a full garbage collection, then heap figures). A text frame ``ping``
is answered ``pong`` to its sender only, not broadcast, like a durable object's
auto-response. ``--event-loop uvloop`` runs it on uvloop (asyncio's own loop by default);
``--gc-threshold N`` tunes the garbage collector as a node's DURABLE_GC_THRESHOLD does.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import WSMsgType, web

from service import tuning

ROOMS = web.AppKey("rooms", dict[str, set[web.WebSocketResponse]])

#: The auto-response pair answered directly (as bench/apps/connections.py sets it up).
PING, PONG = "ping", "pong"


async def room(request: web.Request) -> web.WebSocketResponse:
    """Join the room named by the path; broadcast every message to its members."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    members = request.app[ROOMS].setdefault(request.match_info["name"], set())
    members.add(ws)
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                if message.data == PING:
                    await ws.send_str(PONG)
                    continue
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


def heap_figures(top: int = 80) -> dict[str, Any]:
    """Collect garbage, then count what is left: objects the collector tracks (by type,
    the ``top`` most common), pymalloc blocks in use, asyncio tasks.

    Only container objects are tracked, so str and bytes do not appear by type.
    """
    collected = gc.collect()
    counts = collections.Counter(
        f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
    )
    return {
        "collected": collected,
        "gc_objects": sum(counts.values()),
        "allocated_blocks": sys.getallocatedblocks(),
        "tasks": len(asyncio.all_tasks()),
        "types": dict(counts.most_common(top)),
    }


async def heap(request: web.Request) -> web.Response:
    """``heap_figures`` of this server."""
    return web.json_response(heap_figures())


def create_app() -> web.Application:
    """The baseline server's app."""
    app = web.Application()
    app[ROOMS] = {}
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/debug/heap", heap)
    app.router.add_get("/{binding}/{name}", room)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--event-loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--gc-threshold", type=int, default=0, help="young GC threshold (0: Python's default)"
    )
    args = parser.parse_args(argv)
    tuning.tune_gc(args.gc_threshold)
    loop: asyncio.AbstractEventLoop | None = None
    if args.event_loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(
        create_app(), host=args.host, port=args.port, print=None, access_log=None, loop=loop
    )


if __name__ == "__main__":
    main()
