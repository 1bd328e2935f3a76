"""Load generator of the connections benchmark: one process holding many client WebSockets.

``python -m bench.connections_client --url http://127.0.0.1:N --first I --count C ...``
is started by ``bench.connections``, which drives it with JSON lines on stdin; it answers
with JSON lines on stdout:

- ``{"cmd": "connect"}``: open sockets I .. I+C-1 (socket i joins room ``r<i % rooms>``),
  at most ``--in-flight`` attempts at a time; ``{"event": "progress", "connected": n}``
  every ``--progress-every`` sockets, then ``{"event": "connected", ...}`` with the connect
  latencies and failures;
- ``{"cmd": "ping", "count": n, "rate": r}``: send ``ping`` on random open sockets, on a
  fixed schedule of ``r`` per second (open loop: a slow answer does not delay the next
  ping), and time each ``pong``; answers ``{"event": "pinged", ...}`` with the samples;
- ``{"cmd": "close"}``: close every socket, answer ``{"event": "closed", ...}`` and exit.

Every socket keeps a read pending, as a browser's does, so that the server's protocol pings
are answered while the socket is idle (aiohttp's client answers them only while it reads).

End of stdin (the benchmark went away) or ``--deadline`` seconds after the start drops
every connection and exits, so the process never outlives the benchmark for long.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

#: Connection attempts per socket before it counts as failed.
ATTEMPTS = 3


def emit(message: dict[str, Any]) -> None:
    """One JSON line to the benchmark."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def raise_open_files(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard one if ``needed`` exceeds it; the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def _error_name(error: BaseException) -> str:
    """A short name that groups like errors (a handshake's status, not its URL)."""
    if isinstance(error, aiohttp.WSServerHandshakeError):
        return f"{type(error).__name__}: HTTP {error.status}"
    return f"{type(error).__name__}: {str(error)[:80]}"


class Generator:
    """The sockets of this process and the three phases run on them."""

    def __init__(self, args: argparse.Namespace, session: aiohttp.ClientSession) -> None:
        self.args = args
        self.session = session
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        #: Socket index -> the future of the text answer a ping waits for.
        self.answers: dict[int, asyncio.Future[aiohttp.WSMessage]] = {}
        self.readers: set[asyncio.Task[None]] = set()

    def hold(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Keep ``ws`` open and reading: pings answered, messages handed to ``answers``."""
        index = len(self.sockets)
        self.sockets.append(ws)
        task = asyncio.create_task(self._read(index, ws))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)

    async def _read(self, index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
            while True:
                message = await ws.receive()
                waiter = self.answers.pop(index, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
                if message.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    return

    async def connect(self) -> dict[str, Any]:
        """Open this process's share of the sockets."""
        args = self.args
        gate = asyncio.Semaphore(args.in_flight)
        latencies: list[float] = []
        errors: collections.Counter[str] = collections.Counter()
        failed = 0
        ws_timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=args.close_timeout)

        async def one(index: int) -> None:
            nonlocal failed
            url = f"{args.url}/room/r{index % args.rooms}"
            for _ in range(ATTEMPTS):
                async with gate:
                    started = time.perf_counter()
                    try:
                        ws = await self.session.ws_connect(
                            url,
                            max_msg_size=0,
                            autoping=True,
                            timeout=ws_timeout,
                            compress=args.compress,
                        )
                    except (aiohttp.ClientError, OSError, TimeoutError) as error:
                        errors[_error_name(error)] += 1
                        continue
                    latencies.append(time.perf_counter() - started)
                self.hold(ws)
                if len(self.sockets) % args.progress_every == 0:
                    emit({"event": "progress", "connected": len(self.sockets)})
                return
            failed += 1

        started = time.monotonic()
        await asyncio.gather(*(one(args.first + k) for k in range(args.count)))
        return {
            "event": "connected",
            "connected": len(self.sockets),
            "failed": failed,
            "errors": dict(errors),
            "latencies": latencies,
            "seconds": time.monotonic() - started,
        }

    async def ping(self, count: int, rate: float, timeout: float) -> dict[str, Any]:
        """``count`` pings at ``rate`` per second over random open sockets, one in flight
        per socket; a socket whose answer timed out or was not ``pong`` is not used again."""
        live = [index for index, ws in enumerate(self.sockets) if not ws.closed]
        rng = random.Random(self.args.seed)
        busy: set[int] = set()
        used: set[int] = set()
        samples: list[float] = []
        errors: collections.Counter[str] = collections.Counter()
        tasks: set[asyncio.Task[None]] = set()

        async def one(index: int) -> None:
            ws = self.sockets[live[index]]
            answer = self.answers[live[index]] = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            try:
                await ws.send_str("ping")
                message = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                errors["timeout"] += 1
                return
            except (aiohttp.ClientError, OSError, RuntimeError) as error:
                errors[_error_name(error)] += 1
                return
            elapsed = time.perf_counter() - started
            if message.type is aiohttp.WSMsgType.TEXT and message.data == "pong":
                samples.append(elapsed)
                busy.discard(index)
            else:
                errors[f"answer {message.type.name} {str(message.data)[:40]!r}"] += 1

        start = time.perf_counter()
        for k in range(count):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            while live and len(busy) >= len(live):
                if not tasks:
                    break  # every socket failed: nothing to wait for
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if not live or len(busy) >= len(live):
                errors["no open socket to ping"] += count - k
                break
            index = rng.randrange(len(live))
            while index in busy:
                index = rng.randrange(len(live))
            busy.add(index)
            used.add(index)
            task = asyncio.create_task(one(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        return {
            "event": "pinged",
            "samples": samples,
            "sockets_used": len(used),
            "errors": dict(errors),
            "seconds": time.perf_counter() - start,
        }

    async def close(self) -> dict[str, Any]:
        """Close every socket (Close handshake), a bounded number at a time."""
        gate = asyncio.Semaphore(max(self.args.in_flight, 1) * 4)
        errors: collections.Counter[str] = collections.Counter()

        async def one(ws: aiohttp.ClientWebSocketResponse) -> None:
            async with gate:
                try:
                    await ws.close()
                except (aiohttp.ClientError, OSError, RuntimeError) as error:
                    errors[_error_name(error)] += 1

        started = time.monotonic()
        await asyncio.gather(*(one(ws) for ws in self.sockets))
        return {
            "event": "closed",
            "closed": sum(1 for ws in self.sockets if ws.closed),
            "errors": dict(errors),
            "seconds": time.monotonic() - started,
        }


async def serve(args: argparse.Namespace) -> int:
    """Follow the benchmark's commands until ``close``, end of input or the deadline."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=args.connect_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        generator = Generator(args, session)
        emit({"event": "ready", "pid": os.getpid(), "open_files_limit": args.open_files})
        try:
            async with asyncio.timeout(args.deadline):
                while line := await commands.readline():
                    command = json.loads(line)
                    if command["cmd"] == "connect":
                        emit(await generator.connect())
                    elif command["cmd"] == "ping":
                        emit(
                            await generator.ping(
                                command["count"], command["rate"], command["timeout"]
                            )
                        )
                    elif command["cmd"] == "close":
                        emit(await generator.close())
                        return 0
        except TimeoutError:
            print(f"connections_client: deadline of {args.deadline} s reached", file=sys.stderr)
            return 3
        finally:
            for task in list(generator.readers):
                task.cancel()
        # End of input: the benchmark is gone; the session drops every connection.
        return 2


def parser() -> argparse.ArgumentParser:
    """Command-line options (set by bench.connections)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.connections_client", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", required=True, help="server base URL (http://host:port)")
    parser.add_argument("--first", type=int, default=0, help="index of the first socket")
    parser.add_argument("--count", type=int, required=True, help="sockets to open")
    parser.add_argument("--rooms", type=int, default=100, help="rooms the sockets spread over")
    parser.add_argument("--in-flight", type=int, default=25, help="connection attempts at once")
    parser.add_argument("--progress-every", type=int, default=100, help="sockets per progress")
    parser.add_argument(
        "--compress",
        type=int,
        default=0,
        help="offer permessage-deflate with this window size (15, as browsers do; 0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the ping socket choice")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="seconds per attempt")
    parser.add_argument("--close-timeout", type=float, default=10.0, help="seconds per close")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds before giving up")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load generator; exit 0 after a ``close`` command."""
    args = parser().parse_args(argv)
    if min(args.count, args.rooms, args.in_flight, args.progress_every) < 1:
        print("error: --count, --rooms, --in-flight and --progress-every must be >= 1")
        return 2
    args.open_files = raise_open_files(args.count + 64)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
