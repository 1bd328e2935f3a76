"""Chat across two nodes: each room's two clients split between the nodes, against the same
chat with both clients on one node.

Two durable nodes run on one scratch database, each a process of its own (``python -m
service serve bench/apps/chat.py``); this process is the load generator. Every room has two
clients. Split: the far client joins through node 2, which lets the room go as soon as it
is idle; then the near client joins through node 1, which runs the room from then on. So
every message of the far client reaches the room through the inbox, and every frame the room
sends it comes back through the outbox: all of its traffic crosses the database. Local: both
clients of a room join through node 1, and nothing crosses. Each client keeps up to
``--window`` of its messages in flight (the next leaves when its own copy comes back); the
latency of a message is the time until the *other* client of the room has it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import processes, pyspy, report, scratch

#: Rooms of a phase not yet let go by node 2 (the far clients' node).
_HELD = "SELECT count(*) FROM objects WHERE name LIKE $1 AND owner_node IS NOT NULL"


@dataclass
class Peer:
    """One client: its socket, its window, and what it received."""

    tag: str
    ws: aiohttp.ClientWebSocketResponse
    window: asyncio.Semaphore
    #: Latencies (seconds) of the partner's messages, past the warm-up.
    latencies: list[float] = field(default_factory=list)
    own: int = 0
    other: int = 0


@dataclass
class Phase:
    """The figures of one phase."""

    seconds: float
    messages: int
    near: list[float]
    far: list[float]
    cpu: dict[str, float]
    #: Flushes, events and commit times of each node during the phase.
    commits: dict[str, dict[str, float | None]]
    #: py-spy's summary of each node's samples (with --profile).
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


async def read(peer: Peer, expected: int, warmup: int, done: asyncio.Future[None]) -> None:
    """Count own copies (opening the window) and time the partner's messages."""
    async for message in peer.ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.perf_counter()
        sender, k, sent = message.data.split("|")
        if sender == peer.tag:
            peer.own += 1
            peer.window.release()
        else:
            peer.other += 1
            if int(k) >= warmup:
                peer.latencies.append(now - float(sent))
        if peer.own >= expected and peer.other >= expected and not done.done():
            done.set_result(None)


async def write(peer: Peer, messages: int) -> None:
    for k in range(messages):
        await peer.window.acquire()
        await peer.ws.send_str(f"{peer.tag}|{k}|{time.perf_counter()!r}")


async def join(session: aiohttp.ClientSession, base: str, room: str, tag: str, window: int) -> Peer:
    ws = await session.ws_connect(f"{base}/chat/{room}", max_msg_size=0)
    return Peer(tag, ws, asyncio.Semaphore(window))


async def let_go(url: str, prefix: str, timeout: float) -> None:
    """Wait until node 2 has let every room of the phase go (they hibernated there)."""
    connection = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while await connection.fetchval(_HELD, f"{prefix}%"):
            if time.monotonic() > deadline:
                raise processes.ServerError("node 2 kept its rooms")
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def phase(
    url: str,
    nodes: list[processes.Server],
    split: bool,
    args: argparse.Namespace,
    postmaster: int | None,
) -> Phase:
    """Join every room's two clients, run the chat, and time it."""
    prefix = "split-" if split else "local-"
    near_node, far_node = nodes[0], nodes[1] if split else nodes[0]
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        rooms = [f"{prefix}{i}" for i in range(args.rooms)]
        far = [await join(session, far_node.base, r, "far", args.window) for r in rooms]
        if split:
            await let_go(url, prefix, args.timeout)
        near = [await join(session, near_node.base, r, "near", args.window) for r in rooms]
        peers = near + far
        loop = asyncio.get_running_loop()
        dones = [loop.create_future() for _ in peers]
        readers = [
            asyncio.create_task(read(p, args.messages, args.warmup, d))
            for p, d in zip(peers, dones, strict=True)
        ]
        metrics_before = [await processes.scrape(node.base) for node in nodes]
        spies = await _spy(nodes, prefix, args) if args.profile else []
        cpu_before = _cpu(nodes, postmaster)
        started = time.perf_counter()
        writers = [asyncio.create_task(write(p, args.messages)) for p in peers]
        try:
            await asyncio.wait_for(asyncio.gather(*dones, *writers), args.timeout)
        finally:
            seconds = time.perf_counter() - started
            cpu_after = _cpu(nodes, postmaster)
            profiles = await _unspy(spies)
            metrics_after = [await processes.scrape(node.base) for node in nodes]
            for peer in peers:
                await peer.ws.close()
            await asyncio.gather(*readers, return_exceptions=True)
    return Phase(
        seconds=seconds,
        messages=len(peers) * args.messages,
        # What each client timed: its partner's messages reaching it.
        near=[x for p in near for x in p.latencies],
        far=[x for p in far for x in p.latencies],
        cpu={name: cpu_after[name] - cpu_before[name] for name in cpu_after},
        commits={
            f"node {n}": processes.commit_figures(processes.metrics_delta(before, after))
            for n, (before, after) in enumerate(
                zip(metrics_before, metrics_after, strict=True), start=1
            )
        },
        profiles=profiles,
    )


async def _spy(
    nodes: list[processes.Server], prefix: str, args: argparse.Namespace
) -> list[tuple[str, asyncio.subprocess.Process, Path]]:
    """py-spy on each node for the phase (stopped by ``_unspy`` when it ends)."""
    spies = []
    for n, node in enumerate(nodes, start=1):
        path = report.RESULTS / f"crossnode-{prefix}node{n}.pyspy.txt"
        spy = await pyspy.start(node.process.pid, args.timeout, path)
        if spy is not None:
            spies.append((f"node {n}", spy, path))
    return spies


async def _unspy(
    spies: list[tuple[str, asyncio.subprocess.Process, Path]],
) -> dict[str, dict[str, Any]]:
    """Stop each py-spy (it writes its samples on SIGINT) and sum them up."""
    for _, spy, _ in spies:
        spy.send_signal(signal.SIGINT)
    return {name: await pyspy.finish(spy, path) for name, spy, path in spies}


def _cpu(nodes: list[processes.Server], postmaster: int | None) -> dict[str, float]:
    return {
        "node 1": nodes[0].cpu_seconds(),
        "node 2": nodes[1].cpu_seconds(),
        "postgresql": processes.postgres_cpu_seconds(postmaster),
    }


def summary(result: Phase) -> dict[str, Any]:
    per_message = {name: seconds / result.messages * 1e6 for name, seconds in result.cpu.items()}
    return {
        "seconds": result.seconds,
        "messages": result.messages,
        "messages_per_second": result.messages / result.seconds,
        "latency": report.milliseconds(result.near + result.far),
        "latency_to_far_clients": report.milliseconds(result.far),
        "latency_to_near_clients": report.milliseconds(result.near),
        "cpu_microseconds_per_message": per_message,
        "commits": result.commits,
        **({"profiles": result.profiles} if result.profiles else {}),
    }


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Two nodes; the local phase, then the split one, on the same processes."""
    server_version = await scratch.server_version(url)
    # PostgreSQL's CPU is its own server's (all of it, if it runs elsewhere: then unknown).
    postmaster = await processes.postmaster_of(url)
    loop = processes.event_loop_name(args.event_loop)
    node1 = processes.durable_node(
        url, "chat.py", args.startup, event_loop=loop, node_id="bench-n1", hibernate_after="60"
    )
    node2 = processes.durable_node(
        url, "chat.py", args.startup, event_loop=loop, node_id="bench-n2", hibernate_after="0.2"
    )
    async with node1 as n1, node2 as n2:
        local = summary(await phase(url, [n1, n2], False, args, postmaster))
        split = summary(await phase(url, [n1, n2], True, args, postmaster))
    left = await _outbox_rows(url)
    return {
        "benchmark": "crossnode",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": {**report.environment(server_version), "event_loop": loop},
        "local": local,
        "split": split,
        "outbox_rows_left": left,
        "split_to_local": {
            "messages_per_second": split["messages_per_second"] / local["messages_per_second"],
            "median": split["latency"]["median_ms"] / local["latency"]["median_ms"],
            "p99": split["latency"]["p99_ms"] / local["latency"]["p99_ms"],
        },
    }


async def _outbox_rows(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM outbox")
        return count
    finally:
        await connection.close()


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    p = result["parameters"]
    env = result["environment"]
    rows = []
    for label, key in (("both clients on node 1", "local"), ("split across nodes", "split")):
        figures = result[key]
        cpu = figures["cpu_microseconds_per_message"]
        for who, latency in (
            ("to far", figures["latency_to_far_clients"]),
            ("to near", figures["latency_to_near_clients"]),
        ):
            rows.append(
                [
                    f"{label}, {who}",
                    f"{figures['messages_per_second']:,.0f}",
                    f"{latency['median_ms']:.2f}",
                    f"{latency['p99_ms']:.2f}",
                    f"{cpu['node 1']:.0f}/{cpu['node 2']:.0f}/{_pg(cpu['postgresql'])}",
                ]
            )
    ratio = result["split_to_local"]
    return "\n".join(
        [
            f"crossnode: {p['rooms']} rooms x 2 clients, {p['messages']} messages per client "
            f"({p['warmup']} warm-up), window {p['window']}; {env['event_loop']}; PostgreSQL "
            f"{env['postgresql']}, {env['cpus']} CPUs, load {env['load_average'][0]:.1f} at "
            "the end",
            "",
            report.table(
                ["room, latency of messages", "msg/s", "p50 ms", "p99 ms", "CPU us/msg n1/n2/pg"],
                rows,
            ),
            "",
            f"split / local: messages/s x{ratio['messages_per_second']:.2f}, median latency "
            f"x{ratio['median']:.1f}, p99 x{ratio['p99']:.1f}; outbox rows left: "
            f"{result['outbox_rows_left']}",
            "",
            report.table(
                ["flushes of", "flushes/s", "events/flush", "avg commit ms", "commit p99 <= ms"],
                _commit_rows(result),
            ),
        ]
    )


def _commit_rows(result: dict[str, Any]) -> list[list[str]]:
    """Each node's group commits in each phase: how many, how full, how long."""
    rows = []
    for label, key in (("local", "local"), ("split", "split")):
        figures = result[key]
        for node, c in figures["commits"].items():
            flushes = c["flushes"] or 0.0
            rows.append(
                [
                    f"{label}, {node}",
                    f"{flushes / figures['seconds']:,.0f}",
                    f"{c['events_appended'] / flushes:.1f}" if flushes else "-",
                    f"{c['average_commit_ms']:.2f}" if c["average_commit_ms"] else "-",
                    f"{c['commit_p99_at_most_ms']:g}" if c["commit_p99_at_most_ms"] else "-",
                ]
            )
    return rows


def _pg(microseconds: float) -> str:
    """PostgreSQL's CPU per message: every backend's, so others' work on a shared server
    counts too, and backends that ended meanwhile make it negative (shown as "?")."""
    return f"{microseconds:.0f}" if microseconds >= 0 else "?"


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.crossnode", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=scratch.server_url(), help="server to use")
    parser.add_argument("--rooms", type=int, default=20, help="rooms, two clients each")
    parser.add_argument("--messages", type=int, default=200, help="messages per client")
    parser.add_argument("--warmup", type=int, default=20, help="first messages not timed")
    parser.add_argument("--window", type=int, default=4, help="messages in flight per client")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase")
    processes.add_event_loop_option(parser)
    parser.add_argument("--startup", type=float, default=60.0, help="seconds to wait per server")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy each node during each phase (raw stacks and a summary in the JSON)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    if min(args.rooms, args.messages, args.window) < 1 or not 0 <= args.warmup < args.messages:
        print("error: --rooms, --messages and --window must be at least 1, --warmup below it")
        return 2
    return report.run_on_scratch(
        "crossnode", args.database_url, lambda url: run(url, args), render, (processes.ServerError,)
    )


if __name__ == "__main__":
    sys.exit(main())
