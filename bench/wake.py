"""Wake time of a hibernated object against the length of its history (1k / 100k / 1M events).

One durable node (``python -m service serve bench/apps/wake.py`` on a scratch database,
``hibernate_after`` a fraction of a second) serves one chat room per history length (more
with ``--objects``). The load generator (``python -m bench.wake_client``, a process of its
own) connects one WebSocket per room and lets the rooms hibernate. This process then writes
each room's history with the service's own store (``EventStore``: claim, appends with
``expected_seq`` advancing, release), as chat traffic from that very socket: per message a
``message_received`` and a ``storage_put`` into a ring of the last 100 messages, so the
state stays the same size however long the history grows. The newest snapshot is then the
one the room wrote when it first hibernated (right after the accept): the first wake
replays the whole history, and leaves a snapshot at hibernation. Every later wake loads
that snapshot (and the few events after it).

Wake time: from the client's ``time.monotonic()`` right before ``send`` until the
handler's ``time.monotonic()`` as it starts. Each wake runs alone: the client waits until
every room has hibernated (released, snapshot written) before it sends the next message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench import child, processes, report, scratch
from bench.apps.wake import RING, ring_key
from service.events import types, values
from service.ports.records import Append
from service.store.event_store import EventStore

#: The targets the lead checks.
TARGET_P99_MS = 10.0
TARGET_RATIO = 1.5

#: The rooms' sockets and where their logs stand after the connect (before the history).
_ROOMS = """
SELECT o.name, o.object_id, o.last_seq, w.socket_id
  FROM objects AS o JOIN websockets AS w USING (object_id)
 WHERE o.binding = 'ROOM' AND o.name = ANY($1) AND w.closed_at IS NULL
"""

#: Where each room's log and newest snapshot stand.
_LOGS = """
SELECT o.name, o.last_seq, o.owner_node,
       (SELECT max(s.seq) FROM snapshots AS s WHERE s.object_id = o.object_id) AS snapshot_seq,
       (SELECT octet_length(s.state::text) FROM snapshots AS s
         WHERE s.object_id = o.object_id ORDER BY s.seq DESC LIMIT 1) AS snapshot_bytes
  FROM objects AS o WHERE o.binding = 'ROOM' AND o.name = ANY($1)
"""

_FILLER = " the quick brown fox jumps over the lazy dog" * 2


class WakeError(Exception):
    """The benchmark could not run to the end (its rooms were not as built)."""


@dataclass
class Room:
    """One room: the history it gets and what the database says about it."""

    name: str
    history: int
    object_id: str = ""
    socket_id: str = ""
    #: seq of the room's log before the built history (its socket's accept).
    start_seq: int = 0
    #: Messages in the built history (each is two events).
    messages: int = 0


# -- the history ---------------------------------------------------------------------------


def message_text(number: int) -> str:
    """A chat line of ~80 characters, different for every message."""
    return (f"user-{number % 37:02d}: message {number:07d}" + _FILLER)[:80]


def chunks(socket_id: str, messages: int, per_chunk: int) -> Iterator[list[types.Event]]:
    """The history's events, ``per_chunk`` messages (two events each) at a time.

    What the room's handler records for message ``n``: the inbound frame, then one put of
    the ring slot and the counter (``bench/apps/wake.py``).
    """
    for start in range(0, messages, per_chunk):
        events: list[types.Event] = []
        for number in range(start, min(start + per_chunk, messages)):
            text = values.encode_str(message_text(number))
            events.append(types.MessageReceived(socket_id=socket_id, text=text))
            events.append(types.StoragePut(entries={ring_key(number): text, "count": number + 1}))
        yield events


async def write_history(store: EventStore, room: Room, per_chunk: int, depth: int) -> int:
    """Append ``room``'s history through the store, ``depth`` appends in flight; release it.

    Returns the room's last seq.
    """
    claim = await store.claim(room.object_id, "ROOM", room.name)
    if claim.last_seq != room.start_seq:
        raise WakeError(f"{room.name}: its log moved on during the build ({claim.last_seq})")
    seq = claim.last_seq
    inflight: set[asyncio.Future[None]] = set()
    for events in chunks(room.socket_id, room.messages, per_chunk):
        while len(inflight) >= depth:
            done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                future.result()
        future = asyncio.ensure_future(
            store.append(Append(room.object_id, claim.epoch, seq, events))
        )
        inflight.add(future)
        seq += len(events)
    for future in inflight:
        await future
    await store.release(room.object_id, claim.epoch)
    return seq


async def build(url: str, rooms: list[Room], args: argparse.Namespace) -> dict[str, Any]:
    """Write every room's history, then VACUUM ANALYZE as autovacuum eventually would."""
    connection = await asyncpg.connect(url)
    try:
        found = {
            row["name"]: row for row in await connection.fetch(_ROOMS, [r.name for r in rooms])
        }
        for room in rooms:
            row = found.get(room.name)
            if row is None:
                raise WakeError(f"{room.name}: no open socket in the database")
            room.object_id, room.socket_id = row["object_id"], row["socket_id"]
            room.start_seq = row["last_seq"]
            room.messages = max(0, math.ceil((room.history - room.start_seq) / 2))
        store = EventStore(url, "bench-history", pool_size=4)
        await store.open()
        started, cpu = time.perf_counter(), time.process_time()
        try:
            for room in rooms:
                await write_history(store, room, args.chunk_messages, args.depth)
        finally:
            await store.close()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        vacuum_started = time.perf_counter()
        if args.vacuum:
            await connection.execute("VACUUM (ANALYZE) events, snapshots, objects, websockets")
        vacuum = time.perf_counter() - vacuum_started
        events = sum(2 * room.messages for room in rooms)
        table_bytes = await connection.fetchval("SELECT pg_total_relation_size('events')")
    finally:
        await connection.close()
    return {
        "events": events,
        "seconds": seconds,
        "events_per_second": events / seconds if seconds else None,
        "builder_cpu_seconds": cpu,
        "vacuum_seconds": vacuum,
        "events_table_bytes": table_bytes,
    }


async def logs(url: str, rooms: list[Room]) -> dict[str, dict[str, Any]]:
    """Each room's last seq, newest snapshot and whether it is hibernated."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(_LOGS, [r.name for r in rooms])
    finally:
        await connection.close()
    return {row["name"]: dict(row) for row in rows}


# -- the load generator --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def client(
    node: processes.Server, url: str, rooms: list[Room], args: argparse.Namespace
) -> AsyncIterator[child.Child]:
    """Start ``bench.wake_client``; stop it on the way out (it ends by itself once done)."""
    argv = [
        *("--ws-base", node.ws_base, "--http-base", node.base, "--database-url", url),
        *("--rooms", json.dumps([[room.name, room.history] for room in rooms])),
        *("--wakes", str(args.wakes_per_room), "--warmup", str(args.warmup)),
        *("--reply-timeout", str(args.reply_timeout)),
        *("--first-timeout", str(args.first_timeout)),
        *("--max-seconds", str(args.max_seconds)),
    ]
    load = await child.Child.start("the wake client", "bench.wake_client", argv)
    try:
        yield load
    finally:
        await load.stop(grace=5)


# -- figures -------------------------------------------------------------------------------


def spread(values_ms: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean of a list of milliseconds."""
    return {
        "p50_ms": report.percentile(values_ms, 0.5),
        "p90_ms": report.percentile(values_ms, 0.9),
        "p99_ms": report.percentile(values_ms, 0.99),
        "max_ms": max(values_ms, default=math.nan),
        "mean_ms": sum(values_ms) / len(values_ms) if values_ms else math.nan,
    }


def per_history(
    history: int, rooms: list[Room], done: dict[str, Any], logs_after: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Every figure of one history length."""
    names = {room.name for room in rooms if room.history == history}
    samples = [s for s in done["samples"] if s["room"] in names]
    valid = [s for s in samples if s["valid"]]
    discarded: dict[str, int] = {}
    for sample in samples:
        for reason in sample["reasons"]:
            discarded[reason] = discarded.get(reason, 0) + 1
    first = [s for s in done["first"] if s["room"] in names]
    loads = [s["load_ms"] for s in valid if s["load_ms"] is not None]

    def median(key: str, of: list[dict[str, Any]] = valid) -> float:
        return report.percentile([s[key] for s in of], 0.5)

    return {
        "history": history,
        "rooms": sorted(names),
        "log_events": {name: logs_after[name]["last_seq"] for name in sorted(names)},
        "snapshot_bytes": {name: logs_after[name]["snapshot_bytes"] for name in sorted(names)},
        "samples": len(valid),
        "discarded": len(samples) - len(valid),
        "discard_reasons": discarded,
        "replayed_events_max": max((s["replayed_events"] for s in valid), default=0),
        "wake": spread([s["wake_ms"] for s in valid]),
        "wake_ms_samples": [round(s["wake_ms"], 3) for s in valid],
        "roundtrip": spread([s["roundtrip_ms"] for s in valid]),
        "node_load": spread(loads),
        "breakdown_median_ms": {
            # Gateway, inbox commit with its NOTIFY, listener, up to the claim.
            "before_load": report.percentile(
                [s["wake_ms"] - s["load_ms"] for s in valid if s["load_ms"] is not None], 0.5
            ),
            # Claim, snapshot and events read, fold, up to the constructor.
            "load_to_constructor": report.percentile(
                [
                    s["send_to_constructor_ms"] - (s["wake_ms"] - s["load_ms"])
                    for s in valid
                    if s["load_ms"] is not None
                ],
                0.5,
            ),
            # The inbox read and the mailbox, up to the handler.
            "constructor_to_handler": median("constructor_to_handler_ms"),
        },
        "first_wake": [
            {
                "room": s["room"],
                "replayed_events": s["replayed_events"],
                "wake_ms": s["wake_ms"],
                "roundtrip_ms": s["roundtrip_ms"],
                "node_load_ms": s["load_ms"],
                "valid": s["valid"],
            }
            for s in first
        ],
    }


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the node and the client, build the histories, collect the wakes."""
    server_version = await scratch.server_version(url)
    rooms = [Room(f"h{h}-{i}", h) for h in args.histories for i in range(args.objects)]
    settings = {
        "hibernate_after": str(args.hibernate_after),
        "snapshot_every": str(args.snapshot_every),
    }
    async with processes.durable_node(url, "wake.py", args.startup, **settings) as node:
        before = await processes.scrape(node.base)
        async with client(node, url, rooms, args) as load:
            await load.receive(120, "connected")
            built = await build(url, rooms, args)
            load.send({"go": True, "messages": {room.name: room.messages for room in rooms}})
            await load.drain()
            budget = args.first_timeout * len(rooms) + args.max_seconds + 60 * len(rooms) + 60
            done = await load.receive(budget, "done")
        after = await processes.scrape(node.base)
        resident = node.resident_kib()
    logs_after = await logs(url, rooms)
    figures = {str(h): per_history(h, rooms, done, logs_after) for h in args.histories}
    smallest, largest = figures[str(min(args.histories))], figures[str(max(args.histories))]
    ratio = {
        key: largest["wake"][key] / smallest["wake"][key]
        for key in ("p50_ms", "p99_ms")
        if smallest["wake"][key]
    }
    delta = processes.metrics_delta(before, after)
    result: dict[str, Any] = {
        "benchmark": "wake",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": report.environment(server_version),
        "state": {
            "ring": RING,
            "note": "each message is stored in a ring of the last "
            f"{RING} messages plus a counter: the state is bounded, only the history grows",
        },
        "build": built,
        "histories": figures,
        "ratio_largest_to_smallest": ratio,
        "targets": {"p99_ms": TARGET_P99_MS, "ratio": TARGET_RATIO},
        "meets": {
            "p99": all(f["wake"]["p99_ms"] < TARGET_P99_MS for f in figures.values()),
            "ratio": ratio.get("p50_ms", math.inf) <= TARGET_RATIO,
        },
        "timed_seconds": done["seconds"],
        "truncated": done["truncated"],
        "node": {
            "hibernations": delta.get("durable_hibernations_total", 0.0),
            "wakes": delta.get("durable_wake_seconds_count", 0.0),
            "events_appended": delta.get("durable_events_appended_total", 0.0),
            "resident_kib_at_end": resident,
        },
    }
    result["chart"] = str(
        report.line_chart(
            "wake",
            "Wake of a hibernated room vs its history length",
            "events of history (log scale)",
            "wake time, ms",
            {
                "p50": [(h, figures[str(h)]["wake"]["p50_ms"]) for h in args.histories],
                "p99": [(h, figures[str(h)]["wake"]["p99_ms"]) for h in args.histories],
            },
            log_x=True,
        )
    )
    return result


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    p, env, built = result["parameters"], result["environment"], result["build"]
    figures = result["histories"]
    rows = []
    for key, f in figures.items():
        wake, trip = f["wake"], f["roundtrip"]
        firsts = f["first_wake"]
        rows.append(
            [
                f"{int(key):,}",
                f"{f['samples']}" + (f" (-{f['discarded']})" if f["discarded"] else ""),
                *(f"{wake[k]:.2f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
                f"{trip['p50_ms']:.2f}",
                f"{trip['p99_ms']:.2f}",
                " / ".join(
                    f"{s['wake_ms']:,.0f} ({s['replayed_events']:,} events)" for s in firsts
                ),
            ]
        )
    breakdown = []
    for key, f in figures.items():
        b = f["breakdown_median_ms"]
        breakdown.append(
            [
                f"{int(key):,}",
                f"{b['before_load']:.2f}",
                f"{b['load_to_constructor']:.2f}",
                f"{b['constructor_to_handler']:.2f}",
                f"{f['node_load']['p50_ms']:.2f}",
                f"{f['replayed_events_max']}",
            ]
        )
    ratio = result["ratio_largest_to_smallest"]
    smallest, largest = min(figures, key=int), max(figures, key=int)
    meets = result["meets"]
    snapshot_sizes = sorted({b for f in figures.values() for b in f["snapshot_bytes"].values()})
    lines = [
        f"wake: a message to a hibernated chat room, by history length; PostgreSQL "
        f"{env['postgresql']}, {env['cpus']} CPUs, load {env['load_average'][0]:.1f} at the end; "
        f"hibernate_after {p['hibernate_after']} s, snapshot_every {p['snapshot_every']}, "
        f"{p['objects']} room(s) per length",
        f"state: bounded (ring of the last {result['state']['ring']} messages + a counter; "
        f"snapshots of {', '.join(f'{b:,}' for b in snapshot_sizes)} B): only the history grows",
        f"history: {built['events']:,} events written through EventStore in "
        f"{built['seconds']:.1f} s ({built['events_per_second'] or 0:,.0f} events/s), "
        f"VACUUM ANALYZE {built['vacuum_seconds']:.1f} s, events table "
        f"{built['events_table_bytes'] / 2**20:,.0f} MiB",
        "",
        report.table(
            [
                "history events",
                "wakes",
                "wake p50 ms",
                "p90",
                "p99",
                "max",
                "round trip p50",
                "p99",
                "first wake ms (full replay)",
            ],
            rows,
        ),
        "",
        "where the wake time goes (medians, ms; node load = claim .. constructor .. inbox read):",
        report.table(
            [
                "history events",
                "send -> load start",
                "load -> constructor",
                "constructor -> handler",
                "node load",
                "events replayed",
            ],
            breakdown,
        ),
        "",
        f"largest / smallest history ({int(largest):,} / {int(smallest):,}): "
        + ", ".join(f"{k.removesuffix('_ms')} x{v:.2f}" for k, v in ratio.items())
        + f" (target x{result['targets']['ratio']} on p50: "
        f"{'met' if meets['ratio'] else 'MISSED'}); "
        f"p99 < {result['targets']['p99_ms']:g} ms at every length: "
        f"{'met' if meets['p99'] else 'MISSED'}",
        f"node: {result['node']['hibernations']:,.0f} hibernations, "
        f"{result['node']['wakes']:,.0f} wakes; timed phase {result['timed_seconds']:.1f} s"
        + (" (stopped at --max-seconds)" if result["truncated"] else ""),
        f"chart: {result['chart']}",
    ]
    return "\n".join(lines)


def histories(text: str) -> list[int]:
    """--histories: comma-separated event counts."""
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 2:
        raise argparse.ArgumentTypeError("history lengths must be at least 2 events")
    return counts


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.wake", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=scratch.server_url(), help="server to use")
    parser.add_argument(
        "--histories",
        type=histories,
        default=histories("1000,100000,1000000"),
        help="history lengths in events, comma-separated",
    )
    parser.add_argument("--wakes", type=int, default=200, help="timed wakes per history length")
    parser.add_argument("--warmup", type=int, default=5, help="untimed wakes per room first")
    parser.add_argument("--objects", type=int, default=1, help="rooms per history length")
    parser.add_argument(
        "--hibernate-after", type=float, default=0.05, help="node's idle seconds to hibernate"
    )
    parser.add_argument("--snapshot-every", type=int, default=100, help="node's snapshot_every")
    parser.add_argument(
        "--chunk-messages", type=int, default=2500, help="messages per append while building"
    )
    parser.add_argument("--depth", type=int, default=4, help="appends in flight while building")
    parser.add_argument(
        "--no-vacuum",
        dest="vacuum",
        action="store_false",
        help="skip VACUUM ANALYZE after the build",
    )
    parser.add_argument("--reply-timeout", type=float, default=10.0, help="seconds per reply")
    parser.add_argument(
        "--first-timeout", type=float, default=300.0, help="seconds for a full-replay wake"
    )
    parser.add_argument("--max-seconds", type=float, default=150.0, help="bound on the timed phase")
    parser.add_argument("--startup", type=float, default=60.0, help="seconds to wait for the node")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    if min(args.wakes, args.objects, args.chunk_messages, args.depth) < 1 or args.warmup < 0:
        print("error: --wakes, --objects, --chunk-messages and --depth must be at least 1")
        return 2
    args.wakes_per_room = math.ceil(args.wakes / args.objects)
    return report.run_on_scratch(
        "wake",
        args.database_url,
        lambda url: run(url, args),
        render,
        (processes.ServerError, child.ChildError, WakeError),
    )


if __name__ == "__main__":
    sys.exit(main())
