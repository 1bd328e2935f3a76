"""Missed-message recovery: how long a client that reconnects takes to be back in sync.

A durable node (``python -m service serve bench/apps/feed.py``, a process of its own on a
scratch database) publishes every message a socket sends to the whole room; this process
is the load generator. Two workloads:

- **recovery**: a reader leaves the room; a writer publishes ``--missed`` messages (each
  its own turn, so the log holds one inbound message and one published message for each)
  and waits until the last one is durable; the reader reconnects with ``?after=`` the last
  seq it saw. Reconnect-to-in-sync is the time from the start of its connect until it has
  the last missed message (handshake, the accept's commit, the read of the log, the frames,
  parsing them). Repeated ``--repeats`` times; a reconnect that missed nothing is the
  reference.
- **storm**: ``--storm-clients`` clients publish into one room and keep dropping their
  connections (a clean close or a vanished TCP connection, at random) for
  ``--storm-seconds``, each coming back with the last seq it saw. For each reconnect, the
  time until the client has every message any client had seen when it started to
  reconnect. At the end every client must hold every message of the room's log exactly
  once, in order: the run checks it and reports duplicates and gaps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from bench import processes, report, scratch

#: Seconds a client waits for one frame before the run is declared stuck.
FRAME_TIMEOUT = 30.0


@dataclass
class Client:
    """One client of the room: every (seq, data) it received, across its connections."""

    base: str
    room: str
    received: list[tuple[int, str]] = field(default_factory=list)
    ws: aiohttp.ClientWebSocketResponse | None = None
    #: Set when ``last`` reaches ``target``.
    target: int = 0
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last(self) -> int | None:
        return self.received[-1][0] if self.received else None

    def url(self, after: int | None) -> str:
        query = "" if after is None else f"?after={after}"
        return f"{self.base}/feed/{self.room}{query}"

    def take(self, frame: aiohttp.WSMessage) -> None:
        message = json.loads(frame.data)
        self.received.append((message["seq"], message["data"]))
        if message["seq"] >= self.target:
            self.caught_up.set()

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Keep every frame of one connection until it ends (never cancelled mid-read)."""
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                self.take(frame)

    def expect(self, seq: int) -> None:
        """Set ``caught_up`` once a message at ``seq`` or later has been received."""
        self.target = seq
        if self.last is not None and self.last >= seq:
            self.caught_up.set()
        else:
            self.caught_up.clear()


async def measure_recovery(base: str, args: argparse.Namespace) -> dict[str, Any]:
    """Reconnect-to-in-sync after ``--missed`` messages, and after none, ``--repeats`` times."""
    pad = "x" * max(0, args.payload_bytes - 12)
    missed_times: list[float] = []
    first_frame_times: list[float] = []
    nothing_missed: list[float] = []
    async with aiohttp.ClientSession() as session:
        writer, reader = Client(base, "recovery"), Client(base, "recovery")
        writer.ws = await session.ws_connect(writer.url(None))
        writing = asyncio.ensure_future(writer.read(writer.ws))
        try:
            # A first message gives the reader a position.
            await writer.ws.send_str("start")
            await wait_for_count(writer, 1)
            start = writer.received[-1][0]
            reader.received.append((start, "start"))
            for repeat in range(args.warmup + args.repeats):
                for n in range(args.missed):  # one turn each, pipelined
                    await writer.ws.send_str(f"{repeat}:{n}:{pad}")
                await wait_for_count(writer, len(writer.received) + args.missed)
                newest = writer.received[-1][0]
                elapsed, first = await reconnect(session, reader, newest)
                if repeat >= args.warmup:
                    missed_times.append(elapsed)
                    first_frame_times.append(first)
                # The same reconnect with nothing missed: the cost of the reconnect itself.
                elapsed, _ = await reconnect(session, reader, None)
                if repeat >= args.warmup:
                    nothing_missed.append(elapsed)
            # The reader got exactly what the writer got (from the start message on).
            exact = reader.received == writer.received
        finally:
            await writer.ws.close()
            await writing
    return {
        "missed": args.missed,
        "repeats": args.repeats,
        "in_sync": report.milliseconds(missed_times),
        "first_missed_frame": report.milliseconds(first_frame_times),
        "nothing_missed": report.milliseconds(nothing_missed),
        "exact": exact,
    }


async def reconnect(
    session: aiohttp.ClientSession, client: Client, newest: int | None
) -> tuple[float, float]:
    """Reconnect ``client`` after its last seq; seconds until it has ``newest`` (or, with
    None, until its connection is open), and until its first frame."""
    client.expect(newest if newest is not None else 0)
    started = time.perf_counter()
    ws = await session.ws_connect(client.url(client.last))
    first = time.perf_counter() - started
    if newest is not None:
        frame = await ws.receive(timeout=FRAME_TIMEOUT)
        first = time.perf_counter() - started
        client.take(frame)
        while not client.caught_up.is_set():
            client.take(await ws.receive(timeout=FRAME_TIMEOUT))
    elapsed = time.perf_counter() - started
    await ws.close()
    return elapsed, first


async def wait_for_count(client: Client, count: int) -> None:
    """Wait until ``client`` has received ``count`` messages in all."""
    deadline = time.monotonic() + FRAME_TIMEOUT
    while len(client.received) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"stuck at {len(client.received)} of {count} messages")
        await asyncio.sleep(0.001)


@dataclass
class Storm:
    """The storm's clients, what they did, and how long each reconnect took to catch up."""

    clients: list[Client]
    connections: int = 0
    sent: int = 0
    catch_up: list[float] = field(default_factory=list)

    def newest(self) -> int:
        """The newest seq any client has received: what a reconnecting one must reach."""
        return max((client.last or 0) for client in self.clients)


async def storm_client(
    session: aiohttp.ClientSession,
    client: Client,
    storm: Storm,
    rng: random.Random,
    until: float,
) -> None:
    """Connect, publish a little, stay a little, drop the connection; again until ``until``."""
    loop = asyncio.get_running_loop()
    first = True
    while loop.time() < until:
        target = storm.newest()
        started = time.perf_counter()
        # From the start of the room's log at first: it is the oracle of the accounting.
        after = client.last if client.last is not None else 0
        ws = client.ws = await session.ws_connect(client.url(after))
        storm.connections += 1
        client.expect(target)
        reading = asyncio.ensure_future(client.read(ws))
        if not first:
            await asyncio.wait_for(client.caught_up.wait(), FRAME_TIMEOUT)
            storm.catch_up.append(time.perf_counter() - started)
        first = False
        for _ in range(rng.randrange(0, 4)):
            storm.sent += 1
            await ws.send_str(f"storm:{storm.sent}")
        await asyncio.sleep(rng.uniform(0, 0.3))
        connection = ws._response.connection
        if rng.random() < 0.5 or connection is None or connection.transport is None:
            await ws.close()
        else:
            connection.transport.abort()  # vanish without a Close frame
        await reading


async def measure_storm(base: str, database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The storm, then every client back for the last message, then the accounting."""
    clients = [Client(base, "storm") for _ in range(args.storm_clients)]
    storm = Storm(clients)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        until = asyncio.get_running_loop().time() + args.storm_seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(
                storm_client(session, client, storm, random.Random(index), until)
                for index, client in enumerate(clients)
            )
        )
        duration = time.perf_counter() - started
        await settled(database_url)
        readers = []
        for client in clients:
            client.ws = await session.ws_connect(client.url(client.last))
            readers.append(asyncio.ensure_future(client.read(client.ws)))
        end = await publish_end(clients[0], database_url)
        for client in clients:
            client.expect(end)
            await asyncio.wait_for(client.caught_up.wait(), FRAME_TIMEOUT)
            assert client.ws is not None
            await client.ws.close()
        await asyncio.gather(*readers)
    logged = await published(database_url, "storm")
    duplicates = sum(len(c.received) - len(set(c.received)) for c in clients)
    exact = all(c.received == logged for c in clients)
    missing = sum(len(set(logged) - set(c.received)) for c in clients)
    return {
        "clients": args.storm_clients,
        "seconds": round(duration, 2),
        "connections": storm.connections,
        "reconnects": storm.connections - args.storm_clients,
        "published": len(logged),
        "catch_up": report.milliseconds(storm.catch_up),
        "exact": exact,
        "duplicates": duplicates,
        "missing": missing,
    }


async def settled(database_url: str) -> None:
    """Wait until the room's log stops growing (the last frames of dropped connections)."""
    previous = -1
    while (count := len(await published(database_url, "storm"))) != previous:
        previous = count
        await asyncio.sleep(0.5)


async def publish_end(client: Client, database_url: str) -> int:
    """Publish a last message; its seq, the newest of the room's log."""
    assert client.ws is not None
    await client.ws.send_str("end")
    deadline = time.monotonic() + FRAME_TIMEOUT
    while time.monotonic() < deadline:
        logged = await published(database_url, "storm")
        if logged and logged[-1][1] == "end":
            return logged[-1][0]
        await asyncio.sleep(0.05)
    raise RuntimeError("the last message was not published")


async def published(database_url: str, room: str) -> list[tuple[int, str]]:
    """(seq, data) of every message the room published, from its log."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            """
            SELECT e.seq, e.data::json->>'data' AS data
              FROM events AS e JOIN objects AS o USING (object_id)
             WHERE o.binding = 'FEED' AND o.name = $1 AND e.type = 'message_published'
             ORDER BY e.seq
            """,
            room,
        )
    finally:
        await connection.close()
    return [(row["seq"], row["data"]) for row in rows]


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The recovery workload, then the storm, on one durable node."""
    server_version = await scratch.server_version(url)
    loop = processes.event_loop_name(args.event_loop)
    async with processes.durable_node(url, "feed.py", args.startup, event_loop=loop) as node:
        before = await processes.scrape(node.base)
        recovery = await measure_recovery(node.base, args)
        storm = await measure_storm(node.base, url, args) if args.storm_clients else None
        after = await processes.scrape(node.base)
    return {
        "benchmark": "recovery",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": {**report.environment(server_version), "event_loop": loop},
        "recovery": recovery,
        "storm": storm,
        "node": processes.commit_figures(processes.metrics_delta(before, after)),
    }


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    p, env = result["parameters"], result["environment"]
    recovery = result["recovery"]
    columns = ("median_ms", "p90_ms", "p99_ms", "max_ms")
    rows = [
        [label, *(f"{recovery[key][name]:.1f}" for name in columns)]
        for label, key in (
            (f"in sync after {recovery['missed']:,} missed", "in_sync"),
            ("  first missed message", "first_missed_frame"),
            ("reconnect, nothing missed", "nothing_missed"),
        )
    ]
    lines = [
        f"recovery: {recovery['missed']:,} missed messages of {p['payload_bytes']} B, "
        f"{recovery['repeats']} reconnects after {p['warmup']} warm-up; node on "
        f"{env['event_loop']}; PostgreSQL {env['postgresql']}, {env['cpus']} CPUs, load "
        f"{env['load_average'][0]:.1f} at the end",
        "",
        report.table(["reconnect to ...", "median ms", "p90", "p99", "max"], rows),
        "",
        f"exact (the reader has what the writer has, once, in order): {recovery['exact']}",
    ]
    storm = result["storm"]
    if storm is not None:
        catch_up = storm["catch_up"]
        lines += [
            "",
            f"storm: {storm['clients']} clients for {storm['seconds']} s, "
            f"{storm['reconnects']:,} reconnects, {storm['published']:,} messages published",
            report.table(
                ["reconnect to in sync", "median ms", "p90", "p99", "max"],
                [["storm", *(f"{catch_up[name]:.1f}" for name in columns)]],
            ),
            f"every client has every message once, in order: {storm['exact']} "
            f"(duplicates {storm['duplicates']}, missing {storm['missing']})",
        ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.recovery", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=scratch.server_url(), help="server to use")
    parser.add_argument("--missed", type=int, default=1_000, help="messages missed per reconnect")
    parser.add_argument("--repeats", type=int, default=50, help="timed reconnects")
    parser.add_argument("--warmup", type=int, default=3, help="untimed reconnects first")
    parser.add_argument("--payload-bytes", type=int, default=100, help="message length")
    parser.add_argument("--storm-clients", type=int, default=50, help="storm clients (0: none)")
    parser.add_argument("--storm-seconds", type=float, default=5.0, help="storm duration")
    processes.add_event_loop_option(parser)
    parser.add_argument("--startup", type=float, default=60.0, help="seconds to wait per server")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    if min(args.missed, args.repeats) < 1 or args.warmup < 0 or args.storm_clients < 0:
        print("error: --missed and --repeats must be at least 1")
        return 2
    return report.run_on_scratch(
        "recovery", args.database_url, lambda url: run(url, args), render, (processes.ServerError,)
    )


if __name__ == "__main__":
    sys.exit(main())
