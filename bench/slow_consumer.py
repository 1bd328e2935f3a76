"""What a client that never reads costs a node: RSS growth for N broadcasts to its room.

``python -m service serve bench/apps/chat.py`` runs on a scratch database; this process
opens one socket that never reads (a small receive buffer, so the node's writes back up at
once) and one sender in the same room. The sender sends ``--broadcasts`` distinct messages
of ``--payload-bytes``, each a turn of the room that goes to both sockets, keeping up to
``--window`` in flight; it receives every copy of its own, so the room never waits for it.
The node's RSS is read before the stuck socket joins, after the last broadcast, and after
``--settle`` seconds more; /metrics says whether the node closed the stuck socket.

The node's settings are its defaults unless given (``--max-buffered-bytes``): run the same
command against another version of the code to compare the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench import processes, report, scratch


async def stuck_socket(port: int, path: str) -> socket.socket:
    """A WebSocket whose client never reads: the upgrade, then nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # up to the blank line, not a byte more
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise processes.ServerError(f"the stuck socket was refused: {head!r}")
    return sock


async def broadcast(ws: aiohttp.ClientWebSocketResponse, args: argparse.Namespace) -> float:
    """Send the messages, each distinct, at most ``window`` without their copy back."""
    window = asyncio.Semaphore(args.window)
    filler = "x" * args.payload_bytes

    async def read() -> None:
        for _ in range(args.broadcasts):
            message = await ws.receive(timeout=30)
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise processes.ServerError(f"the sender got {message.type.name}")
            window.release()

    started = time.perf_counter()
    reader = asyncio.create_task(read())
    for n in range(args.broadcasts):
        await window.acquire()
        await ws.send_str(f"{n}:{filler}"[: args.payload_bytes])
    await reader
    return time.perf_counter() - started


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = {"hibernate_after": "600"}
    if args.max_buffered_bytes:
        settings["max_buffered_bytes"] = str(args.max_buffered_bytes)
    loop = processes.event_loop_name(args.event_loop)
    async with (
        processes.durable_node(url, "chat.py", args.startup, event_loop=loop, **settings) as node,
        aiohttp.ClientSession() as session,
    ):
        port = int(node.base.rsplit(":", 1)[1])
        sender = await session.ws_connect(f"{node.ws_base}/chat/room", max_msg_size=0)
        await sender.send_str("warm-up")
        await sender.receive(timeout=30)
        rss_before = node.resident_kib()
        stuck = await stuck_socket(port, "/chat/room")
        try:
            seconds = await broadcast(sender, args)
            rss_after = node.resident_kib()
            await asyncio.sleep(args.settle)
            rss_settled = node.resident_kib()
            figures = await processes.scrape(node.base)
        finally:
            stuck.close()
            await sender.close()
    return {
        "benchmark": "slow_consumer",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": {**report.environment(await scratch.server_version(url)), "loop": loop},
        "seconds": seconds,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_settled_kib": rss_settled,
        "overflow_closes": figures.get("durable_socket_overflows_total"),
        "open_sockets_after": figures.get("durable_open_sockets"),
    }


def render(result: dict[str, Any]) -> str:
    p = result["parameters"]
    grown = (result["rss_after_kib"] - result["rss_before_kib"]) / 1024
    settled = (result["rss_settled_kib"] - result["rss_before_kib"]) / 1024
    closes = result["overflow_closes"]
    bound = p["max_buffered_bytes"] or "the node's default"
    return "\n".join(
        [
            f"slow consumer: {p['broadcasts']:,} broadcasts of {p['payload_bytes']:,} bytes to "
            f"a room with one socket that never reads (max_buffered_bytes: {bound}); "
            f"{result['seconds']:.1f} s",
            f"node RSS: {result['rss_before_kib'] / 1024:.1f} MiB before, "
            f"+{grown:.1f} MiB after the broadcasts, +{settled:.1f} MiB {p['settle']:g} s later",
            "stuck socket closed by the node (durable_socket_overflows_total): "
            + ("not counted by this version" if closes is None else f"{closes:g}")
            + f"; sockets open after: {result['open_sockets_after']}",
        ]
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.slow_consumer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=scratch.server_url(), help="server to use")
    parser.add_argument("--broadcasts", type=int, default=20_000, help="messages broadcast")
    parser.add_argument("--payload-bytes", type=int, default=2048, help="size of each message")
    parser.add_argument("--window", type=int, default=64, help="broadcasts in flight at most")
    parser.add_argument(
        "--max-buffered-bytes", type=int, default=0, help="the node's bound (0: its default)"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before the last RSS")
    processes.add_event_loop_option(parser)
    parser.add_argument("--startup", type=float, default=60.0, help="seconds to wait for the node")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if min(args.broadcasts, args.payload_bytes, args.window) < 1:
        print("error: --broadcasts, --payload-bytes and --window must be at least 1")
        return 2
    return report.run_on_scratch(
        "slow_consumer",
        args.database_url,
        lambda url: run(url, args),
        render,
        (processes.ServerError,),
    )


if __name__ == "__main__":
    sys.exit(main())
