"""Round trip of one ws.send through a chat room, against a durable node and a bare baseline.

Each server runs in a process of its own (``python -m service serve bench/apps/chat.py`` on a
scratch database, then ``python -m bench.baseline_server``); this process is the load
generator. N clients join one room; the clients take turns sending one message at a time,
and the time from ``send_str`` until the sender receives its own broadcast copy is the round
trip. The next message goes out once every client has its copy, so sends never overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench import processes, report, scratch


@dataclass
class Client:
    """One WebSocket client and what its reader is waiting for."""

    index: int
    ws: aiohttp.ClientWebSocketResponse
    received: int = 0
    expected: str | None = None
    arrived: asyncio.Future[float] | None = None


@dataclass
class Fanout:
    """A broadcast in flight: how many clients still have to receive it."""

    remaining: int
    done: asyncio.Future[float]


@dataclass
class Samples:
    """Round trips (sender got its copy) and fan-outs (every client got it), in seconds."""

    roundtrips: list[float] = field(default_factory=list)
    fanouts: list[float] = field(default_factory=list)


async def read(client: Client, fanouts: dict[str, Fanout]) -> None:
    """Drain one client's socket, noting when awaited messages arrive."""
    async for message in client.ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.perf_counter()
        client.received += 1
        if message.data == client.expected and client.arrived and not client.arrived.done():
            client.arrived.set_result(now)
        fanout = fanouts.get(message.data)
        if fanout is not None:
            fanout.remaining -= 1
            if fanout.remaining == 0 and not fanout.done.done():
                fanout.done.set_result(now)


async def send_one(
    sender: Client,
    token: str,
    clients: int,
    fanouts: dict[str, Fanout],
    timeout: float,
) -> tuple[float, float]:
    """Send ``token`` from ``sender``; return (round trip, fan-out) in seconds."""
    loop = asyncio.get_running_loop()
    sender.expected = token
    sender.arrived = loop.create_future()
    fanout = fanouts[token] = Fanout(clients, loop.create_future())
    started = time.perf_counter()
    await sender.ws.send_str(token)
    own = await asyncio.wait_for(sender.arrived, timeout)
    last = await asyncio.wait_for(fanout.done, timeout)
    del fanouts[token]
    return own - started, last - started


async def measure(url: str, args: argparse.Namespace) -> Samples:
    """Connect the clients to one room, warm up, then time sequential sends."""
    samples = Samples()
    fanouts: dict[str, Fanout] = {}
    pad = "x" * max(0, args.payload_bytes - 24)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        clients = [
            Client(i, await session.ws_connect(f"{url}/chat/{args.room}", max_msg_size=0))
            for i in range(args.clients)
        ]
        readers = [asyncio.create_task(read(client, fanouts)) for client in clients]
        try:
            for k in range(args.warmup + args.messages):
                sender = clients[k % len(clients)]
                token = f"{sender.index}:{k}:{pad}"
                own, last = await send_one(sender, token, len(clients), fanouts, args.timeout)
                if k >= args.warmup:
                    samples.roundtrips.append(own)
                    samples.fanouts.append(last)
        finally:
            for client in clients:
                await client.ws.close()
            await asyncio.gather(*readers, return_exceptions=True)
    return samples


def summary(samples: Samples) -> dict[str, Any]:
    """Percentiles in milliseconds."""
    out: dict[str, Any] = {"messages": len(samples.roundtrips)}
    for label, values in (("roundtrip", samples.roundtrips), ("fanout", samples.fanouts)):
        out[label] = report.milliseconds(values)
    return out


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline server first, then the durable node, with the same clients and messages."""
    server_version = await scratch.server_version(url)
    loop = processes.event_loop_name(args.event_loop)
    async with processes.baseline(args.startup, loop) as base:
        baseline = summary(await measure(base.base, args))
    async with processes.durable_node(url, "chat.py", args.startup, event_loop=loop) as node:
        before = await processes.scrape(node.base)
        samples = await measure(node.base, args)
        after = await processes.scrape(node.base)
    durable = summary(samples)
    delta = processes.metrics_delta(before, after)
    durable["node"] = {
        **processes.commit_figures(delta),
        "note": "counted over the warm-up as well as the measured sends",
    }
    return {
        "benchmark": "roundtrip",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": {**report.environment(server_version), "event_loop": loop},
        "baseline": baseline,
        "durable": durable,
        "durable_to_baseline": {
            "median": durable["roundtrip"]["median_ms"] / baseline["roundtrip"]["median_ms"],
            "p99": durable["roundtrip"]["p99_ms"] / baseline["roundtrip"]["p99_ms"],
        },
    }


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    p = result["parameters"]
    rows = []
    for label, key in (
        ("baseline (aiohttp, nothing stored)", "baseline"),
        ("durable node (chat room)", "durable"),
    ):
        for kind in ("roundtrip", "fanout"):
            figures = result[key][kind]
            rows.append(
                [
                    f"{label}, {'sender' if kind == 'roundtrip' else 'all clients'}",
                    *(
                        f"{figures[name]:.2f}"
                        for name in ("median_ms", "p90_ms", "p99_ms", "max_ms")
                    ),
                ]
            )
    ratio = result["durable_to_baseline"]
    env = result["environment"]
    node = result["durable"]["node"]
    commit = node["average_commit_ms"]
    return "\n".join(
        [
            f"roundtrip: {p['clients']} clients in one room, {p['messages']:,} sequential sends "
            f"of {p['payload_bytes']} B after {p['warmup']} warm-up sends; both servers on "
            f"{env['event_loop']}; PostgreSQL {env['postgresql']}, {env['cpus']} CPUs, load "
            f"{env['load_average'][0]:.1f} at the end",
            "",
            report.table(["server, copy received by", "median ms", "p90", "p99", "max"], rows),
            "",
            f"durable / baseline (sender round trip): median x{ratio['median']:.1f}, "
            f"p99 x{ratio['p99']:.1f}",
            f"node: {node['events_appended']:,.0f} events in {node['flushes']:,.0f} flushes "
            f"({node['events_appended'] / max(node['flushes'], 1):.2f} per flush)"
            + (f", average commit {commit:.2f} ms" if commit is not None else "")
            + (
                f" (median <= {node['commit_median_at_most_ms']:g} ms, "
                f"p99 <= {node['commit_p99_at_most_ms']:g} ms)"
                if node["commit_median_at_most_ms"] is not None
                and node["commit_p99_at_most_ms"] is not None
                else ""
            ),
        ]
    )


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.roundtrip", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=scratch.server_url(), help="server to use")
    parser.add_argument("--clients", type=int, default=10, help="clients in the room")
    parser.add_argument("--messages", type=int, default=2_000, help="timed sends")
    parser.add_argument("--warmup", type=int, default=100, help="untimed sends first")
    parser.add_argument("--payload-bytes", type=int, default=100, help="message length")
    parser.add_argument("--room", default="bench-room", help="room name")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait per send")
    processes.add_event_loop_option(parser)
    parser.add_argument("--startup", type=float, default=60.0, help="seconds to wait per server")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    if min(args.clients, args.messages) < 1 or args.warmup < 0:
        print("error: --clients and --messages must be at least 1")
        return 2
    return report.run_on_scratch(
        "roundtrip", args.database_url, lambda url: run(url, args), render, (processes.ServerError,)
    )


if __name__ == "__main__":
    sys.exit(main())
