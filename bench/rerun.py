"""Rerun speed: recorded inbound messages re-executed per second by ``durable rerun``, against
live handling of the same messages by a node, from the same run.

A durable node (``python -m service serve bench/apps/ledger.py`` on a scratch database)
handles N messages from C WebSocket clients of one room (this process; each client keeps a
window of messages in flight, so the node's group commit batches as it does under load).
Live messages per second is N over the time from the first send to the last
acknowledgement (the handler's ack leaves only once the message and its writes are
committed). The node is then stopped, and ``python -m service rerun LEDGER/<room> --app
bench/apps/ledger.py --json`` re-executes that recorded history against the same code.
Rerun messages per second is the inbound events it reran over the seconds the command
reports for the rerun itself (reading the log through the history, rebuilding the state,
running each turn, comparing it with the log); the command's wall time, with the process's
start-up and the application's import, is shown beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench import processes, report, scratch


class RerunBenchError(Exception):
    """The run could not be measured: a client stalled, or the rerun failed or diverged."""


async def _client(
    session: aiohttp.ClientSession, url: str, name: str, messages: int, window: int
) -> None:
    """Send ``messages`` frames with at most ``window`` unacknowledged; wait for every ack."""
    ws = await session.ws_connect(f"{url}?client={name}", max_msg_size=0)
    slots = asyncio.Semaphore(window)
    acked = 0

    async def read() -> None:
        nonlocal acked
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            acked += 1
            slots.release()
            if acked == messages:
                return

    reader = asyncio.create_task(read())
    try:
        for number in range(messages):
            await slots.acquire()
            await ws.send_str(f"{name} says {number:07d}")
        await reader
    finally:
        reader.cancel()
        await ws.close()
    if acked != messages:
        raise RerunBenchError(f"{name}: {acked} of {messages} messages acknowledged")


async def live(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Serve the ledger; clients send the messages; the time until the last ack."""
    async with processes.durable_node(
        url, "ledger.py", args.startup, hibernate_after="3600"
    ) as node:
        room = f"{node.base}/ledger/{args.room}"
        shares = [
            args.messages // args.clients + (1 if i < args.messages % args.clients else 0)
            for i in range(args.clients)
        ]
        timeout = aiohttp.ClientTimeout(total=args.max_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            started = time.perf_counter()
            cpu = node.cpu_seconds()
            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        _client(session, room, f"c{i}", share, args.window)
                        for i, share in enumerate(shares)
                        if share
                    )
                ),
                args.max_seconds,
            )
            seconds = time.perf_counter() - started
            cpu = node.cpu_seconds() - cpu
    return {
        "messages": args.messages,
        "seconds": seconds,
        "messages_per_second": args.messages / seconds,
        "node_cpu_seconds": cpu,
    }


async def rerun(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """``durable rerun`` of the room against the same code; its report and wall time."""
    env = processes.server_env({"DATABASE_URL": url, "DURABLE_LOG_LEVEL": "WARNING"})
    argv = [
        *(sys.executable, "-m", "service", "rerun", f"LEDGER/{args.room}"),
        *("--app", str(processes.APPS / "ledger.py"), "--json"),
    ]
    started = time.perf_counter()
    # The command's CPU time: what its process used, read once it has been reaped.
    cpu = _children_cpu()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=processes.ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), args.max_seconds)
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    if process.returncode != 0:
        raise RerunBenchError(
            f"durable rerun exited with {process.returncode}:\n{out.decode()}{err.decode()}"
        )
    found = json.loads(out)
    reran = found["inbound_events_agreed"]
    return {
        "inbound_events": reran,
        "seconds": found["seconds"],
        "messages_per_second": reran / found["seconds"],
        "wall_seconds": wall,
        "wall_messages_per_second": reran / wall,
        "command_cpu_seconds": cpu,
    }


def _children_cpu() -> float:
    """User plus system CPU seconds of this process's reaped children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Record the messages live, then rerun them."""
    server_version = await scratch.server_version(url)
    handled = await live(url, args)
    reran = await rerun(url, args)
    # Each client's upgrade request, its messages, and its close.
    if reran["inbound_events"] != args.messages + 2 * args.clients:
        raise RerunBenchError(
            f"the rerun covered {reran['inbound_events']} inbound events, not {args.messages} "
            f"messages and {args.clients} clients' upgrades and closes"
        )
    return {
        "benchmark": "rerun",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": report.environment(server_version),
        "live": handled,
        "rerun": reran,
        "rerun_to_live": reran["messages_per_second"] / handled["messages_per_second"],
    }


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    p, env = result["parameters"], result["environment"]
    handled, reran = result["live"], result["rerun"]
    rows = [
        [
            "live: the node handles them (first send to last ack)",
            f"{handled['messages']:,}",
            f"{handled['seconds']:.2f}",
            f"{handled['messages_per_second']:,.0f}",
        ],
        [
            "rerun: durable rerun, the rerun itself",
            f"{reran['inbound_events']:,}",
            f"{reran['seconds']:.2f}",
            f"{reran['messages_per_second']:,.0f}",
        ],
        [
            "rerun: durable rerun, the whole command",
            f"{reran['inbound_events']:,}",
            f"{reran['wall_seconds']:.2f}",
            f"{reran['wall_messages_per_second']:,.0f}",
        ],
    ]
    return "\n".join(
        [
            f"rerun: {p['messages']:,} messages from {p['clients']} clients into one room "
            f"(window {p['window']} each), two events per message; PostgreSQL "
            f"{env['postgresql']}, {env['cpus']} CPUs, load {env['load_average'][0]:.1f} at "
            "the end",
            "",
            report.table(["", "inbound events", "seconds", "per second"], rows),
            "",
            f"rerun / live: x{result['rerun_to_live']:.2f}",
            f"CPU per message: node {handled['node_cpu_seconds'] / handled['messages'] * 1e6:.0f}"
            f" µs while live (PostgreSQL's not counted), durable rerun "
            f"{reran['command_cpu_seconds'] / reran['inbound_events'] * 1e6:.0f} µs "
            "(start-up included; its queries' PostgreSQL time not counted)",
        ]
    )


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.rerun", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=scratch.server_url(), help="server to use")
    parser.add_argument("--messages", type=int, default=100_000, help="messages recorded")
    parser.add_argument("--clients", type=int, default=4, help="WebSocket clients sending")
    parser.add_argument("--window", type=int, default=64, help="messages in flight per client")
    parser.add_argument("--room", default="bench-ledger", help="room name")
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="give up on a phase after this long"
    )
    parser.add_argument("--startup", type=float, default=60.0, help="seconds to wait per server")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    if min(args.messages, args.clients, args.window) < 1:
        print("error: --messages, --clients and --window must be at least 1")
        return 2
    return report.run_on_scratch(
        "rerun",
        args.database_url,
        lambda url: run(url, args),
        render,
        (processes.ServerError, RerunBenchError, TimeoutError),
    )


if __name__ == "__main__":
    sys.exit(main())
