"""Failover: how long a room is out of service when the node running it is killed.

A survivor node runs for the whole benchmark; each round starts an owner node, which takes a
fresh room, and then kills it (SIGKILL). The room's client sits on the survivor: it joins
there first, the survivor lets the room go, and the owner takes it when its own client
joins. From then on the client sends a message every ``--interval`` seconds, which reaches
the room through the inbox and comes back through the outbox (``bench/apps/chat.py`` sends
every message to every socket of the room). The owner is killed once the client has had
``--before`` messages back; the failover time is from the kill to the first message the
survivor serves: the client has its copy of a message sent after the kill. The messages
sent during the gap wait in the inbox and are served, in order, once the survivor holds the
room; the run counts any that never come back (none should).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg

from bench import processes, report, scratch

#: The room's owner node, as the catalog has it.
_OWNER = "SELECT owner_node FROM objects WHERE binding = 'CHAT' AND name = $1"


class FailoverError(Exception):
    """A round could not run to the end."""


async def _owner_is(url: str, room: str, expected: str | None, timeout: float) -> None:
    connection = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while await connection.fetchval(_OWNER, room) != expected:
            if time.monotonic() > deadline:
                raise FailoverError(f"room {room} is not owned by {expected} after {timeout} s")
            await asyncio.sleep(0.02)
    finally:
        await connection.close()


class Sender:
    """The room's client: sends numbered messages at a steady pace, and notes when each
    copy comes back."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
        self.ws = ws
        self.interval = interval
        self.sent: dict[int, float] = {}
        self.back: dict[int, float] = {}
        self.changed = asyncio.Event()

    async def send_forever(self) -> None:
        number = 0
        while True:
            self.sent[number] = time.perf_counter()
            await self.ws.send_str(f"m|{number}")
            number += 1
            await asyncio.sleep(self.interval)

    async def read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            kind, number = message.data.split("|")
            if kind == "m":
                self.back.setdefault(int(number), time.perf_counter())
                self.changed.set()

    async def until(self, done: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


async def one_round(
    url: str, survivor: processes.Server, number: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Start an owner, move a room to it, kill it; the figures of the failover."""
    room = f"failover-{number}"
    settings = {"lease_timeout": str(args.lease), "hibernate_after": "60"}
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{survivor.base}/chat/{room}")
        await _owner_is(url, room, None, args.timeout)  # the survivor let it go
        owner_id = f"owner-{number}"
        async with processes.durable_node(
            url, "chat.py", args.startup, node_id=owner_id, **settings
        ) as owner:
            near = await session.ws_connect(f"{owner.base}/chat/{room}")
            await _owner_is(url, room, owner_id, args.timeout)
            sender = Sender(ws, args.interval)
            tasks = [asyncio.create_task(sender.send_forever()), asyncio.create_task(sender.read())]
            try:
                await sender.until(lambda: len(sender.back) >= args.before, args.timeout)
                owner.process.kill()
                killed = time.perf_counter()
                await owner.process.wait()
                sent_before_kill = max(n for n, t in sender.sent.items() if t < killed)

                def served_after_kill() -> bool:
                    return any(n > sent_before_kill for n in sender.back)

                await sender.until(served_after_kill, args.lease + args.timeout)
                first = min(t for n, t in sender.back.items() if n > sent_before_kill)
                await _owner_is(url, room, "survivor", args.timeout)
                # Everything sent comes back: what waited in the inbox through the gap too.
                tasks[0].cancel()
                last_sent = max(sender.sent)
                with contextlib.suppress(TimeoutError):
                    await sender.until(lambda: all(n in sender.back for n in sender.sent), 10)
                lost = sum(1 for n in range(last_sent + 1) if n not in sender.back)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await near.close()
        await ws.close()
    return {"failover_s": first - killed, "sent": last_sent + 1, "lost": lost}


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    server_version = await scratch.server_version(url)
    rounds = []
    settings = {"lease_timeout": str(args.lease), "hibernate_after": "0.3"}
    async with processes.durable_node(
        url, "chat.py", args.startup, node_id="survivor", **settings
    ) as survivor:
        for number in range(args.kills):
            rounds.append(await one_round(url, survivor, number, args))
            print(
                f"  kill {number + 1}/{args.kills}: served again after "
                f"{rounds[-1]['failover_s'] * 1000:,.0f} ms",
                file=sys.stderr,
                flush=True,
            )
    seconds = [r["failover_s"] for r in rounds]
    return {
        "benchmark": "failover",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": report.environment(server_version),
        "rounds": rounds,
        "failover_ms": report.milliseconds(seconds),
        "lost": sum(r["lost"] for r in rounds),
        "sent": sum(r["sent"] for r in rounds),
    }


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    env = result["environment"]
    p = result["parameters"]
    ms = result["failover_ms"]
    return "\n".join(
        [
            f"failover: PostgreSQL {env['postgresql']}, {env['cpus']} CPUs, "
            f"load {env['load_average'][0]:.1f} at the end",
            f"{p['kills']} kills of the node running a room (SIGKILL), lease timeout "
            f"{p['lease']:g} s; a client on the survivor sends every {p['interval'] * 1000:g} ms",
            report.table(
                ["kill to first message served by the survivor", "p50", "p99", "max", "lost"],
                [
                    [
                        f"{len(result['rounds'])} kills",
                        f"{ms['median_ms']:,.0f} ms",
                        f"{ms['p99_ms']:,.0f} ms",
                        f"{ms['max_ms']:,.0f} ms",
                        f"{result['lost']} of {result['sent']:,}",
                    ]
                ],
            ),
        ]
    )


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.failover", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--database-url", default=scratch.server_url(), help="server to use")
    add("--kills", type=int, default=10, help="owners started and killed, one at a time")
    add("--lease", type=float, default=2.0, help="the nodes' --lease-timeout, in seconds")
    add("--interval", type=float, default=0.01, help="seconds between the client's messages")
    add("--before", type=int, default=20, help="messages back before the kill")
    add("--timeout", type=float, default=15.0, help="seconds any one step may take")
    add("--startup", type=float, default=60.0, help="seconds to wait per node")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    if args.kills < 1 or args.lease <= 0 or args.interval <= 0 or args.before < 1:
        print("error: --kills and --before at least 1, --lease and --interval above 0")
        return 2
    return report.run_on_scratch(
        "failover",
        args.database_url,
        lambda url: run(url, args),
        render,
        (
            processes.ServerError,
            FailoverError,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
