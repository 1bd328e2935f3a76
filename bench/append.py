"""Durable events per second through the EventStore, beside a raw COPY of the same rows.

Three ways of writing the same event rows into one scratch database, in one run:

- raw COPY: one ``copy_records_to_table`` of every row, the database's bulk limit;
- one INSERT per commit: the naive way, for contrast (a bounded number of rows);
- the service's store: ``EventStore`` with many objects and concurrent appenders that
  pipeline their appends the way the runtime does, counting only committed events.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench import report, scratch
from service import tuning
from service.events import types, values
from service.ports.records import Append, Claim
from service.settings import Settings
from service.store.event_store import EventStore

#: Columns of ``events`` the service writes; the others take their defaults.
COLUMNS = ["object_id", "seq", "type", "version", "data"]

#: The contrast INSERT: one row, one statement, one commit.
INSERT_ONE = (
    "INSERT INTO events (object_id, seq, type, version, data) VALUES ($1, $2, $3, $4, $5::jsonb)"
)

#: Rows of our objects that reached the table, to check the store's count.
COUNT_ROWS = "SELECT count(*) FROM events WHERE object_id = ANY($1::text[])"

Row = tuple[str, int, str, int, str]


@dataclass
class FlushLog:
    """What the store's ``on_flush`` callback reported."""

    sizes: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def record(self, events: int, seconds: float) -> None:
        """The on_flush callback."""
        self.sizes.append(events)
        self.seconds.append(seconds)


@dataclass
class AppendLog:
    """Outcome of every append submitted to the store."""

    committed: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def make_events(count: int, sockets: int, payload_bytes: int) -> list[types.Event]:
    """Chat-like ``message_received`` events, as a turn of the runtime records them."""
    socket_ids = [uuid.uuid4().hex for _ in range(sockets)]
    filler = "the quick brown fox jumps over the lazy dog " * (payload_bytes // 44 + 1)
    events: list[types.Event] = []
    for index in range(count):
        body = json.dumps({"user": f"user-{index % 97}", "n": index, "text": filler})
        text = body[: payload_bytes - 2] + '"}'
        events.append(
            types.MessageReceived(
                socket_id=socket_ids[index % sockets], text=values.encode_str(text)
            )
        )
    return events


def object_ids(count: int) -> list[str]:
    """Fresh object ids in the service's format (64 lowercase hex characters)."""
    return [secrets.token_hex(32) for _ in range(count)]


def rows_for(events: Sequence[types.Event], objects: Sequence[str]) -> list[Row]:
    """The rows the store would write: events dealt round-robin to objects, seq from 1."""
    seqs = dict.fromkeys(objects, 0)
    rows: list[Row] = []
    for index, event in enumerate(events):
        object_id = objects[index % len(objects)]
        seqs[object_id] += 1
        rows.append((object_id, seqs[object_id], event.type, event.version, types.to_data(event)))
    return rows


async def measure_copy(url: str, rows: list[Row]) -> dict[str, Any]:
    """One COPY of every row into ``events``: the raw limit of the database."""
    connection = await asyncpg.connect(url)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        await connection.copy_records_to_table("events", records=rows, columns=COLUMNS)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await connection.close()
    return {
        "events": len(rows),
        "seconds": elapsed,
        "events_per_second": len(rows) / elapsed,
        "client_cpu_us_per_event": cpu / len(rows) * 1e6,
    }


async def measure_insert(url: str, rows: list[Row]) -> dict[str, Any]:
    """One INSERT and one commit per row, on one connection."""
    connection = await asyncpg.connect(url)
    try:
        statement = await connection.prepare(INSERT_ONE)
        started = time.perf_counter()
        for row in rows:
            await statement.fetch(*row)
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return {"events": len(rows), "seconds": elapsed, "events_per_second": len(rows) / elapsed}


def plan(claims: list[Claim], events: list[types.Event], per_append: int) -> list[Append]:
    """The appends one appender will submit: ``events`` dealt round-robin to ``claims``.

    Built before the clock starts, as the COPY's rows are: the timed part is submitting
    them to the store and their commits, not making the test data.
    """
    seqs = {claim.object_id: claim.last_seq for claim in claims}
    appends = []
    for turn, start in enumerate(range(0, len(events), per_append)):
        claim = claims[turn % len(claims)]
        chunk = events[start : start + per_append]
        seq = seqs[claim.object_id]
        appends.append(Append(claim.object_id, claim.epoch, seq, chunk))
        seqs[claim.object_id] = seq + len(chunk)
    return appends


async def appender(store: EventStore, appends: list[Append], depth: int, log: AppendLog) -> None:
    """Submit ``appends`` in order, with up to ``depth`` in flight (0: no bound).

    Like the runtime, the next append is submitted before the previous one is durable, and
    commits are observed with done-callbacks (a flush settles hundreds of appends at once,
    waking this appender once rather than once per append).
    """
    inflight = 0
    room = asyncio.Event()

    def settled(future: asyncio.Future[None], submitted: float, count: int) -> None:
        nonlocal inflight
        inflight -= 1
        error = future.exception()
        if error is not None:
            log.failed += count
            log.errors.append(repr(error))
        else:
            log.committed += count
            log.latencies.append(time.perf_counter() - submitted)
        if not depth or inflight < depth:
            room.set()

    for append in appends:
        while depth and inflight >= depth:
            room.clear()
            await room.wait()
        future = asyncio.ensure_future(store.append(append))
        inflight += 1
        future.add_done_callback(
            functools.partial(settled, submitted=time.perf_counter(), count=len(append.events))
        )
    while inflight:
        room.clear()
        await room.wait()


async def measure_store(
    url: str,
    events: list[types.Event],
    objects: list[str],
    *,
    concurrency: int,
    depth: int,
    per_append: int,
    pool_size: int,
) -> dict[str, Any]:
    """Durable events per second through ``EventStore`` with concurrent, pipelined appenders."""
    flushes = FlushLog()
    log = AppendLog()
    store = EventStore(url, "bench-node", pool_size=pool_size, on_flush=flushes.record)
    await store.open()
    try:
        claims = await asyncio.gather(*(store.claim(o, "BENCH", None) for o in objects))
        shares = [claims[i::concurrency] for i in range(concurrency)]
        work = [events[i::concurrency] for i in range(concurrency)]
        plans = [
            plan(share, chunk, per_append)
            for share, chunk in zip(shares, work, strict=True)
            if share and chunk
        ]
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(appender(store, appends, depth, log) for appends in plans))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        stored = await store.pool.fetchval(COUNT_ROWS, objects)
    finally:
        await store.close()
    sizes = flushes.sizes
    return {
        "events": len(events),
        "committed": log.committed,
        "failed": log.failed,
        "errors": sorted(set(log.errors))[:5],
        "rows_in_table": stored,
        "seconds": elapsed,
        "events_per_second": log.committed / elapsed,
        "client_cpu_us_per_event": cpu / max(log.committed, 1) * 1e6,
        "wall_us_per_event": elapsed / max(log.committed, 1) * 1e6,
        "flushes": len(sizes),
        "average_batch": sum(sizes) / len(sizes) if sizes else 0.0,
        "median_batch": report.percentile(sizes, 0.5),
        "largest_batch": max(sizes, default=0),
        "flush_ms_median": report.percentile(flushes.seconds, 0.5) * 1000,
        "flush_ms_p99": report.percentile(flushes.seconds, 0.99) * 1000,
        "flush_busy_fraction": sum(flushes.seconds) / elapsed,
        "append_ms_median": report.percentile(log.latencies, 0.5) * 1000,
        "append_ms_p99": report.percentile(log.latencies, 0.99) * 1000,
    }


def middle(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate (the upper one of two middles)."""
    return sorted(rounds, key=lambda r: r["events_per_second"])[len(rounds) // 2]


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """All three measurements on the scratch database at ``url``.

    COPY and the store alternate for ``args.rounds`` rounds, each round on fresh objects,
    and the median round of each is reported: the machine may be shared, and a single
    round can be slowed by whatever else runs.
    """
    events = make_events(args.events, sockets=50, payload_bytes=args.payload_bytes)
    server_version = await scratch.server_version(url)
    insert_rows = rows_for(events[: args.insert_events], object_ids(args.objects))
    insert = await measure_insert(url, insert_rows)
    copies, stores = [], []
    for _ in range(args.rounds):
        copies.append(await measure_copy(url, rows_for(events, object_ids(args.objects))))
        stores.append(
            await measure_store(
                url,
                events,
                object_ids(args.objects),
                concurrency=args.concurrency,
                depth=args.depth,
                per_append=args.events_per_append,
                pool_size=args.pool_size,
            )
        )
    copy, store = middle(copies), middle(stores)
    return {
        "benchmark": "append",
        "parameters": {key: value for key, value in vars(args).items() if key != "database_url"},
        "environment": report.environment(server_version),
        "average_data_bytes": sum(len(types.to_data(e)) for e in events) / len(events),
        "copy": copy,
        "insert_per_commit": insert,
        "store": store,
        "store_to_copy": store["events_per_second"] / copy["events_per_second"],
        "target_store_to_copy": 0.50,
        "rounds": {"copy": copies, "store": stores},
    }


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    copy, insert, store = result["copy"], result["insert_per_commit"], result["store"]
    p = result["parameters"]
    env = result["environment"]
    rows = [
        [
            "raw COPY (copy_records_to_table)",
            f"{copy['events']:,}",
            f"{copy['seconds']:.3f}",
            f"{copy['events_per_second']:,.0f}",
        ],
        [
            "INSERT, one row per commit",
            f"{insert['events']:,}",
            f"{insert['seconds']:.3f}",
            f"{insert['events_per_second']:,.0f}",
        ],
        [
            "EventStore (group commit), durable",
            f"{store['committed']:,}",
            f"{store['seconds']:.3f}",
            f"{store['events_per_second']:,.0f}",
        ],
    ]
    ratio = result["store_to_copy"]
    each = " / ".join(
        f"{c['events_per_second']:,.0f} vs {s['events_per_second']:,.0f}"
        for c, s in zip(result["rounds"]["copy"], result["rounds"]["store"], strict=True)
    )
    verdict = "meets" if ratio >= result["target_store_to_copy"] else "BELOW"
    return "\n".join(
        [
            f"append: PostgreSQL {env['postgresql']}, {env['cpus']} CPUs "
            f"(load {env['load_average'][0]:.1f} at the end); {p['events']:,} events "
            f"of ~{result['average_data_bytes']:.0f} B data, {p['objects']:,} objects, "
            f"{p['concurrency']} appenders x depth {p['depth']}, "
            f"{p['events_per_append']} event(s) per append",
            "",
            report.table(["path", "events", "seconds", "events/s"], rows),
            "",
            f"store / COPY: {ratio:.1%} ({verdict} the 50% target); median of {p['rounds']} "
            f"rounds (COPY vs store events/s: {each})",
            f"flushes: {store['flushes']:,}, batch average {store['average_batch']:.1f} events, "
            f"median {store['median_batch']:.0f}, largest {store['largest_batch']:,}; "
            f"flush median {store['flush_ms_median']:.2f} ms, p99 {store['flush_ms_p99']:.2f} ms; "
            f"flushing {store['flush_busy_fraction']:.0%} of the time",
            f"Python CPU of this process: store {store['client_cpu_us_per_event']:.1f} us/event "
            f"(wall {store['wall_us_per_event']:.1f} us/event), "
            f"COPY {copy['client_cpu_us_per_event']:.1f} us/event",
            f"append submitted -> durable: median {store['append_ms_median']:.2f} ms, "
            f"p99 {store['append_ms_p99']:.2f} ms",
            f"check: {store['rows_in_table']:,} rows in the table, {store['failed']:,} failed"
            + (f" ({'; '.join(store['errors'])})" if store["errors"] else ""),
        ]
    )


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.append", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=scratch.server_url(), help="server to use")
    parser.add_argument("--events", type=int, default=50_000, help="events per path")
    parser.add_argument("--objects", type=int, default=1_000, help="objects written to")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent appenders")
    parser.add_argument(
        "--depth", type=int, default=0, help="appends in flight per appender (0: unbounded)"
    )
    parser.add_argument("--events-per-append", type=int, default=1, help="events per append")
    parser.add_argument("--insert-events", type=int, default=2_000, help="rows for the INSERT")
    parser.add_argument("--payload-bytes", type=int, default=100, help="message text length")
    parser.add_argument("--rounds", type=int, default=3, help="COPY/store rounds (median shown)")
    parser.add_argument("--pool-size", type=int, default=10, help="EventStore pool size")
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=Settings.model_fields["gc_threshold"].default,
        help="young GC threshold, as a node sets it (0: Python's default)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    if min(args.events, args.objects, args.concurrency, args.events_per_append, args.rounds) < 1:
        print("error: counts must be at least 1")
        return 2
    if args.objects < args.concurrency:
        print("error: --objects must be at least --concurrency (each appender owns objects)")
        return 2
    # The store runs in this process as it runs in a node: with the node's GC settings.
    tuning.tune_gc(args.gc_threshold)
    return report.run_on_scratch("append", args.database_url, lambda url: run(url, args), render)


if __name__ == "__main__":
    sys.exit(main())
