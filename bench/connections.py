"""Many idle WebSockets on one node: connect rate, memory per socket, auto-response latency.

Opens ``--sockets`` client WebSockets (spread over ``--rooms`` rooms) from
``--generators`` load-generator processes (``python -m bench.connections_client``) against
two servers in turn, each a process of its own:

- **baseline**: ``python -m bench.baseline_server``, a bare aiohttp WebSocket server that
  answers ``ping`` with ``pong`` itself;
- **durable node**: ``python -m service serve bench/apps/connections.py`` on a scratch
  database; each room accepts its sockets with ``ctx.accept_websocket`` (a durable event) and
  sets the ``ping`` -> ``pong`` auto-response, which the gateway answers without waking it.

For each server it measures the connect rate, the server's resident memory (RSS) before
connecting, while connecting, once all are open, once idle (the node: every room
hibernated, per /metrics) and after a full garbage collection and ``--settle`` seconds;
then ``--pings`` pings over random sockets at ``--ping-rate`` per second, each timed until
its ``pong``; the node's /metrics must show that no room woke up meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import child, processes, report, scratch
from bench.connections_client import raise_open_files
from service.settings import Settings
from service.store.database_url import for_asyncpg as database_url_for_asyncpg

#: File descriptors a server needs besides its client sockets (database pool, listener...).
SPARE_FILES = 256


class BenchError(Exception):
    """The run cannot be measured (its limits are too low)."""


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal whole shares."""
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]


@contextlib.asynccontextmanager
async def load_generators(
    server: processes.Server, args: argparse.Namespace
) -> AsyncIterator[list[child.Child]]:
    """Start the load generators against ``server``; wait until each is ready.

    On the way out, a generator still running gets end-of-input (it drops its connections
    and exits), then SIGTERM after 10 seconds.
    """
    generators: list[child.Child] = []
    deadline = 3 * args.phase_timeout + args.pings / args.ping_rate + 60
    try:
        first = 0
        for index, count in enumerate(shares(args.sockets, args.generators)):
            argv = [
                *("--url", server.base, "--first", str(first), "--count", str(count)),
                *("--rooms", str(args.rooms), "--in-flight", str(args.in_flight)),
                *("--progress-every", str(max(1, min(100, count // 10)))),
                *("--seed", str(index), "--deadline", str(deadline)),
                *("--compress", str(args.compress)),
            ]
            generators.append(
                await child.Child.start(
                    f"load generator {index}",
                    "bench.connections_client",
                    argv,
                    line_limit=1 << 24,  # one line carries every connect latency
                )
            )
            first += count
        for generator in generators:
            await generator.receive(args.phase_timeout, "ready")
        yield generators
    finally:
        await asyncio.shield(asyncio.gather(*(g.stop() for g in generators)))


async def get_json(url: str) -> dict[str, Any]:
    """GET ``url`` and decode its JSON answer."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        response.raise_for_status()
        answer: dict[str, Any] = await response.json()
        return answer


async def wait_hibernated(server: processes.Server, sockets: int, timeout: float) -> dict[str, Any]:
    """Poll /metrics until no room is live and the node holds ``sockets`` open sockets."""
    started = time.monotonic()
    while True:
        figures = await processes.scrape(server.base)
        live = figures.get("durable_live_objects", -1.0)
        held = figures.get("durable_open_sockets", -1.0)
        done = live == 0 and held == sockets
        if done or time.monotonic() - started > timeout:
            return {
                "all_hibernated": done,
                "seconds": time.monotonic() - started,
                "live_objects": live,
                "hibernated_objects": figures.get("durable_hibernated_objects"),
                "open_sockets": held,
            }
        await asyncio.sleep(0.2)


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because an accept queue was full
    (TcpExt ListenOverflows, for the whole machine), or None where it cannot be read."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    rows = [line.split() for line in lines if line.startswith("TcpExt:")]
    if len(rows) < 2 or "ListenOverflows" not in rows[0]:
        return None
    return int(rows[1][rows[0].index("ListenOverflows")])


def heap_per_socket(before: dict[str, Any], after: dict[str, Any], sockets: int) -> dict[str, Any]:
    """What the server's heap gained per open socket (objects by type, blocks, tasks)."""
    per = max(sockets, 1)
    gained = {
        name: (count - before["types"].get(name, 0)) / per for name, count in after["types"].items()
    }
    return {
        "gc_objects": (after["gc_objects"] - before["gc_objects"]) / per,
        "allocated_blocks": (after["allocated_blocks"] - before["allocated_blocks"]) / per,
        "tasks": (after["tasks"] - before["tasks"]) / per,
        "types": {
            name: round(value, 2)
            for name, value in sorted(gained.items(), key=lambda item: -item[1])
            if value >= 0.5
        },
    }


async def open_in_log(database_url: str, timeout: float) -> int:
    """Sockets the node's log still has open, once every client has closed: polled until
    none is left or ``timeout`` seconds pass (the rooms wake to record the closes)."""
    connection = await asyncpg.connect(database_url_for_asyncpg(database_url), timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while True:
            left: int = await connection.fetchval(
                "SELECT count(*) FROM websockets WHERE closed_at IS NULL"
            )
            if left == 0 or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


async def measure(
    server: processes.Server, args: argparse.Namespace, database_url: str | None = None
) -> dict[str, Any]:
    """Connect, let the server go idle, collect, ping, close; memory and latency figures.

    With ``database_url`` (the node's), also count the sockets its log keeps open after
    every client closed: accepted in the log, but never connected (should be none).
    """
    durable = server.name == "durable node"
    heap_before = await get_json(server.base + "/debug/heap")
    rss_before = server.resident_kib()
    curve: list[tuple[int, int]] = [(0, rss_before)]
    result: dict[str, Any] = {}
    async with load_generators(server, args) as generators:
        counts = [0] * len(generators)
        step = args.sample_every
        next_sample = step

        def progress(index: int, message: dict[str, Any]) -> None:
            nonlocal next_sample
            counts[index] = message["connected"]
            total = sum(counts)
            if total >= next_sample:
                curve.append((total, server.resident_kib()))
                next_sample = (total // step + 1) * step

        metrics_start = await processes.scrape(server.base) if durable else {}
        overflows = listen_overflows()
        started = time.perf_counter()
        connected = await asyncio.gather(
            *(
                g.ask(
                    {"cmd": "connect"},
                    "connected",
                    args.phase_timeout,
                    functools.partial(progress, k),
                )
                for k, g in enumerate(generators)
            )
        )
        connect_seconds = time.perf_counter() - started
        overflows_after = listen_overflows()
        sockets = sum(c["connected"] for c in connected)
        rss_open = server.resident_kib()
        if curve[-1][0] != sockets:
            curve.append((sockets, rss_open))
        latencies = [x for c in connected for x in c["latencies"]]
        errors: dict[str, int] = {}
        for c in connected:
            for name, count in c["errors"].items():
                errors[name] = errors.get(name, 0) + count
        result["connect"] = {
            "sockets": sockets,
            "failed": sum(c["failed"] for c in connected),
            "attempt_errors": errors,
            "seconds": connect_seconds,
            "per_second": sockets / connect_seconds,
            "latency": report.milliseconds(latencies),
            "listen_overflows": (
                None
                if overflows is None or overflows_after is None
                else overflows_after - overflows
            ),
        }
        if durable:
            metrics_open = await processes.scrape(server.base)
            result["connect"]["node"] = processes.commit_figures(
                processes.metrics_delta(metrics_start, metrics_open)
            )
            result["hibernation"] = await wait_hibernated(server, sockets, args.phase_timeout)
        rss_idle = server.resident_kib()
        heap_after = await get_json(server.base + "/debug/heap")
        await asyncio.sleep(args.settle)
        rss_collected = server.resident_kib()
        per = max(sockets, 1)
        result["memory"] = {
            "rss_before_kib": rss_before,
            "rss_open_kib": rss_open,
            "rss_idle_kib": rss_idle,
            "rss_collected_kib": rss_collected,
            "open_kib_per_socket": (rss_open - rss_before) / per,
            "idle_kib_per_socket": (rss_idle - rss_before) / per,
            "collected_kib_per_socket": (rss_collected - rss_before) / per,
            "curve": curve,
            "heap_per_socket": heap_per_socket(heap_before, heap_after, sockets),
            "heap_after": {k: v for k, v in heap_after.items() if k != "types"},
        }

        metrics_before = await processes.scrape(server.base) if durable else {}
        counts_per = shares(args.pings, len(generators))
        pinged = await asyncio.gather(
            *(
                g.ask(
                    {
                        "cmd": "ping",
                        "count": count,
                        "rate": args.ping_rate * count / args.pings,
                        "timeout": args.ping_timeout,
                    },
                    "pinged",
                    args.phase_timeout + args.pings / args.ping_rate,
                )
                for g, count in zip(generators, counts_per, strict=True)
                if count
            )
        )
        samples = [x for p in pinged for x in p["samples"]]
        ping_errors: dict[str, int] = {}
        for p in pinged:
            for name, count in p["errors"].items():
                ping_errors[name] = ping_errors.get(name, 0) + count
        used = sum(p["sockets_used"] for p in pinged)
        rss_pinged = server.resident_kib()
        result["pings"] = {
            "sent": args.pings,
            "answered": len(samples),
            "errors": ping_errors,
            "sockets_used": used,
        }
        result["pings"].update(report.milliseconds(samples))
        result["memory"]["rss_after_pings_kib"] = rss_pinged
        result["memory"]["kib_per_pinged_socket"] = (rss_pinged - rss_collected) / max(used, 1)
        if durable:
            metrics_after = await processes.scrape(server.base)
            delta = processes.metrics_delta(metrics_before, metrics_after)
            result["pings"]["node"] = {
                "wakes": delta.get("durable_wake_seconds_count", 0.0),
                "events_appended": delta.get("durable_events_appended_total", 0.0),
                "hibernations": delta.get("durable_hibernations_total", 0.0),
                "live_objects_after": metrics_after.get("durable_live_objects"),
                "open_sockets_after": metrics_after.get("durable_open_sockets"),
            }

        closed = await asyncio.gather(
            *(g.ask({"cmd": "close"}, "closed", args.phase_timeout) for g in generators)
        )
        result["close"] = {
            "closed": sum(c["closed"] for c in closed),
            "seconds": max(c["seconds"] for c in closed),
        }
    if database_url is not None:
        result["close"]["open_in_log_after"] = await open_in_log(database_url, args.close_wait)
    return result


def check_limits(args: argparse.Namespace) -> dict[str, int]:
    """Raise the open-files limit for the servers and generators; refuse what cannot work."""
    needed = args.sockets + SPARE_FILES
    soft = raise_open_files(needed)
    if soft < needed:
        raise BenchError(
            f"the open-files limit (ulimit -n) is {soft}, and cannot be raised to the "
            f"{needed} that {args.sockets:,} sockets need in the server process: "
            "raise the hard limit or pass a smaller --sockets"
        )
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if high - low + 1 < args.sockets + 1000:
        raise BenchError(
            f"the ephemeral port range {low}-{high} is too small for {args.sockets:,} sockets"
        )
    return {"open_files_limit": soft, "ephemeral_ports": high - low + 1}


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline server first, then the durable node, with the same clients and pings."""
    limits = check_limits(args)
    server_version = await scratch.server_version(url)
    loop = processes.event_loop_name(args.event_loop)
    async with processes.baseline(args.startup, loop) as base:
        baseline = await measure(base, args)
    async with processes.durable_node(
        url,
        "connections.py",
        args.startup,
        hibernate_after=str(args.hibernate_after),
        heartbeat=str(args.heartbeat),
        event_loop=loop,
    ) as node:
        durable = await measure(node, args, url)
    result: dict[str, Any] = {
        "benchmark": "connections",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": {**report.environment(server_version), **limits, "event_loop": loop},
        "baseline": baseline,
        "durable": durable,
        "durable_to_baseline": {
            "idle_kib_per_socket": _ratio(durable, baseline, "memory", "idle_kib_per_socket"),
            "collected_kib_per_socket": _ratio(
                durable, baseline, "memory", "collected_kib_per_socket"
            ),
            "ping_median": _ratio(durable, baseline, "pings", "median_ms"),
            "ping_p99": _ratio(durable, baseline, "pings", "p99_ms"),
            "connect_rate": _ratio(durable, baseline, "connect", "per_second"),
        },
        "targets": {
            "kib_per_hibernated_socket_at_most": 16,
            "kib_per_hibernated_socket": durable["memory"]["idle_kib_per_socket"],
            "ping_p99_ms_below": 5,
            "ping_p99_ms": durable["pings"]["p99_ms"],
        },
    }
    chart = report.line_chart(
        "connections",
        f"Server RSS while {args.sockets:,} WebSockets connect ({args.rooms} rooms)",
        "sockets open",
        "resident memory (MiB)",
        {
            "durable node": [(n, kib / 1024) for n, kib in durable["memory"]["curve"]],
            "baseline (aiohttp)": [(n, kib / 1024) for n, kib in baseline["memory"]["curve"]],
        },
    )
    result["chart"] = str(chart)
    return result


def _ratio(durable: dict[str, Any], baseline: dict[str, Any], group: str, key: str) -> float:
    denominator = baseline[group][key]
    return float(durable[group][key] / denominator) if denominator else float("nan")


def extra_objects(node: dict[str, Any], baseline: dict[str, Any]) -> list[tuple[str, float]]:
    """Object types per socket that the node holds beyond the baseline's, most first."""
    names = set(node["types"]) | set(baseline["types"])
    extra = {n: node["types"].get(n, 0) - baseline["types"].get(n, 0) for n in names}
    return sorted(
        ((n.removeprefix("builtins."), c) for n, c in extra.items() if abs(c) >= 0.5),
        key=lambda item: -item[1],
    )


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    p = result["parameters"]
    env = result["environment"]
    servers = (("baseline (aiohttp)", "baseline"), ("durable node", "durable"))
    memory_rows = []
    ping_rows = []
    for label, key in servers:
        r = result[key]
        m = r["memory"]
        memory_rows.append(
            [
                label,
                f"{r['connect']['sockets']:,}",
                f"{r['connect']['per_second']:,.0f}",
                f"{r['connect']['latency']['p99_ms']:.1f}",
                *(
                    f"{m[name] / 1024:.1f}"
                    for name in ("rss_before_kib", "rss_open_kib", "rss_idle_kib")
                ),
                f"{m['rss_collected_kib'] / 1024:.1f}",
                f"{m['idle_kib_per_socket']:.1f}",
                f"{m['collected_kib_per_socket']:.1f}",
            ]
        )
        pings = r["pings"]
        ping_rows.append(
            [
                label,
                f"{pings['answered']:,}/{pings['sent']:,}",
                *(f"{pings[name]:.2f}" for name in ("median_ms", "p90_ms", "p99_ms", "max_ms")),
            ]
        )
    ratio = result["durable_to_baseline"]
    targets = result["targets"]
    d = result["durable"]
    node = d["connect"]["node"]
    hib = d["hibernation"]
    during = d["pings"]["node"]
    heap = d["memory"]["heap_per_socket"]
    base_heap = result["baseline"]["memory"]["heap_per_socket"]
    kib = targets["kib_per_hibernated_socket"]
    p99 = targets["ping_p99_ms"]
    lines = [
        f"connections: {p['sockets']:,} sockets in {p['rooms']} rooms from {p['generators']} "
        f"load generators ({p['in_flight']} connection attempts in flight each); "
        f"{p['pings']:,} pings at {p['ping_rate']:g}/s; node hibernate_after "
        f"{p['hibernate_after']:g} s, heartbeat {p.get('heartbeat', 0):g} s; "
        f"both servers on {env['event_loop']}; "
        f"PostgreSQL {env['postgresql']}, {env['cpus']} CPUs, "
        f"load {env['load_average'][0]:.1f} at the end",
        "",
        report.table(
            [
                "server",
                "sockets",
                "connect/s",
                "connect p99 ms",
                "RSS before MiB",
                "all open",
                "idle",
                "after gc",
                "KiB/socket idle",
                "after gc",
            ],
            memory_rows,
        ),
        "(idle: the node once every room has hibernated; after gc: a full collection in the "
        f"server, then {p['settle']:g} s)",
        "",
        "auto-response (ping -> pong) with every socket open:",
        report.table(["server", "pongs", "median ms", "p90", "p99", "max"], ping_rows),
        "",
        "RSS after the pings, gained per socket pinged: "
        + ", ".join(
            f"{label} {result[key]['memory']['kib_per_pinged_socket']:.1f} KiB "
            f"({result[key]['pings']['sockets_used']:,} sockets)"
            for label, key in servers
        )
        + (
            f" (clients offer permessage-deflate, window {p['compress']})"
            if p["compress"]
            else " (no compression negotiated)"
        ),
        f"durable / baseline: KiB per socket x{ratio['idle_kib_per_socket']:.2f} idle, "
        f"x{ratio['collected_kib_per_socket']:.2f} after gc; ping median "
        f"x{ratio['ping_median']:.2f}, p99 x{ratio['ping_p99']:.2f}; connect rate "
        f"x{ratio['connect_rate']:.2f}",
        f"targets: {kib:.1f} KiB per hibernated socket (at most 16: "
        f"{'met' if kib <= 16 else 'NOT met'}); ping p99 {p99:.2f} ms with all open (below 5: "
        f"{'met' if p99 < 5 else 'NOT met'})",
        f"node while connecting: {node['events_appended']:,.0f} events in "
        f"{node['flushes']:,.0f} flushes ({node['events_appended'] / max(node['flushes'], 1):.1f}"
        f" per flush); "
        + (
            f"every room hibernated {hib['seconds']:.1f} s after the last connect "
            f"({hib['hibernated_objects']:.0f} rooms)"
            if hib["all_hibernated"]
            else f"NOT all hibernated after {hib['seconds']:.0f} s: {hib['live_objects']:.0f} "
            "rooms still live"
        ),
        f"node during the pings: {during['wakes']:.0f} wakes, {during['events_appended']:.0f} "
        f"events appended, {during['live_objects_after']:.0f} live rooms after; after every "
        f"client closed, {d['close']['open_in_log_after']} sockets still open in its log",
        f"heap per socket after gc (gc-tracked objects, pymalloc blocks, tasks): node "
        f"{heap['gc_objects']:.1f}, {heap['allocated_blocks']:.0f}, {heap['tasks']:.2f}; "
        f"baseline {base_heap['gc_objects']:.1f}, {base_heap['allocated_blocks']:.0f}, "
        f"{base_heap['tasks']:.2f}",
        "gc-tracked objects per socket, node minus baseline: "
        + ", ".join(f"{name} {count:+.2g}" for name, count in extra_objects(heap, base_heap)[:16]),
    ]
    for label, key in servers:
        r = result[key]
        problems = []
        if r["connect"]["failed"]:
            problems.append(f"{r['connect']['failed']} sockets failed to connect")
        if r["connect"]["listen_overflows"]:
            problems.append(
                f"{r['connect']['listen_overflows']} connections dropped by a full accept queue "
                "(the machine's ListenOverflows) while connecting: SYNs retried after 1 s+; "
                "try a smaller --in-flight"
            )
        if r["connect"]["attempt_errors"]:
            problems.append(f"attempt errors {r['connect']['attempt_errors']}")
        if r["pings"]["errors"]:
            problems.append(f"ping errors {r['pings']['errors']}")
        if r["close"].get("open_in_log_after"):
            problems.append(
                f"{r['close']['open_in_log_after']} sockets still open in the log after every "
                "client closed (accepted, but the client never got them)"
            )
        if r["close"]["closed"] != r["connect"]["sockets"]:
            problems.append(f"only {r['close']['closed']} sockets closed cleanly")
        if problems:
            lines.append(f"WARNING {label}: " + "; ".join(problems))
    lines.append(f"chart: {result['chart']}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.connections", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=scratch.server_url(), help="server to use")
    parser.add_argument("--sockets", type=int, default=10_000, help="WebSockets to open")
    parser.add_argument("--rooms", type=int, default=100, help="rooms they spread over")
    parser.add_argument("--generators", type=int, default=4, help="load-generator processes")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=25,
        help="connection attempts at once per generator (keep the total under the servers' "
        "listen backlog of 128)",
    )
    parser.add_argument("--pings", type=int, default=2_000, help="auto-response pings timed")
    parser.add_argument("--ping-rate", type=float, default=200.0, help="pings per second")
    parser.add_argument("--ping-timeout", type=float, default=5.0, help="seconds per pong")
    parser.add_argument(
        "--compress",
        type=int,
        default=0,
        help="clients offer permessage-deflate with this window size, as browsers do "
        "(15; 0: no compression)",
    )
    parser.add_argument(
        "--sample-every", type=int, default=1_000, help="sockets between RSS samples"
    )
    parser.add_argument(
        "--hibernate-after", type=float, default=1.0, help="the node's idle seconds"
    )
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=Settings.model_fields["heartbeat"].default,
        help="the node's seconds between protocol pings to idle clients, which answer them "
        "(0: none; the baseline sends none)",
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds after the gc before reading RSS"
    )
    parser.add_argument(
        "--close-wait",
        type=float,
        default=20.0,
        help="seconds to wait for the node's log to record every close",
    )
    parser.add_argument(
        "--phase-timeout", type=float, default=120.0, help="seconds per connect/ping/close phase"
    )
    processes.add_event_loop_option(parser)
    parser.add_argument("--startup", type=float, default=60.0, help="seconds to wait per server")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    if min(args.sockets, args.rooms, args.generators, args.in_flight, args.sample_every) < 1:
        print("error: --sockets, --rooms, --generators, --in-flight, --sample-every must be >= 1")
        return 2
    if args.pings < 1 or args.ping_rate <= 0 or args.generators > args.sockets:
        print("error: --pings and --ping-rate must be positive, --generators <= --sockets")
        return 2
    return report.run_on_scratch(
        "connections",
        args.database_url,
        lambda url: run(url, args),
        render,
        (processes.ServerError, child.ChildError, BenchError),
    )


if __name__ == "__main__":
    sys.exit(main())
