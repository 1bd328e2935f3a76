"""Chat fan-out: delivered messages per second and end-to-end latency, durable node vs baseline.

Two scenarios, each against the bare baseline server (``bench.baseline_server``) and a
durable node serving ``bench/apps/chat.py`` (every message to every socket of the room, the
sender included, each inbound message recorded in the log first), in one run:

- ``broadcast``: one room, ``--listeners`` listeners and one sender;
- ``chat``: ``--rooms`` rooms of ``--room-size`` users, every user sending.

Both servers run for the whole run, on the same event loop and GC threshold (the node's
settings), so the comparison is about persistence; the node's objects never hibernate
(``--hibernate-after``), as the baseline's rooms never do. The clients live in
``--processes`` load-generator processes (``bench.fanout_client``), connected to both
servers before anything is sent. Each measurement is a phase with a common start time,
``--warmup`` seconds, then ``--duration`` measured seconds, on one server at a time:

- saturation: each sender keeps up to a window of messages outstanding (until it receives
  its own copy back), so the server is the bottleneck while queues stay bounded;
- fixed loads: open-loop senders at fractions (``--loads``) of the lower of the two
  saturated rates, which both servers sustain, for latency at equal offered load.

Delivered = copies received by all clients within the measured window, per second. Latency
= receive time minus the send time carried in the message, over every copy of every message
sent within the window. After each phase every copy of every message is accounted for; a
missing, repeated or reordered copy fails the run (exit code 1).

The targets: durable delivered/s at saturation at least 70% of the baseline's; durable p99
at ``--target-load`` at most twice the baseline's plus one commit (the node's average
commit time over that point's window, from /metrics). ``--profile`` samples the node with
py-spy during its saturation window and prints where its CPU goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import child, processes, pyspy, report, scratch
from bench.fanout_client import histogram_percentile
from service.settings import Settings

#: Seconds between sending a phase's command and its common start.
LEAD = 0.5

#: The two servers, in the order each point measures them.
SERVERS = ("baseline", "durable")

#: What the targets ask of the durable node.
THROUGHPUT_TARGET = 0.70
P99_FACTOR = 2.0


@dataclass(frozen=True)
class Scenario:
    """Rooms and their clients: room -> [(client id, is a sender)]."""

    name: str
    title: str
    rooms: dict[str, list[tuple[int, bool]]]
    window: int

    @property
    def clients(self) -> list[tuple[int, str, bool]]:
        """(id, room, sender) of every client, by id."""
        found = [(i, room, s) for room, members in self.rooms.items() for i, s in members]
        return sorted(found)

    @property
    def senders(self) -> int:
        return sum(s for _, _, s in self.clients)

    @property
    def members(self) -> int:
        """Sockets per room: copies delivered per message (the sender's own included)."""
        return len(next(iter(self.rooms.values())))


def broadcast(listeners: int, window: int) -> Scenario:
    """One room: client 0 sends, the others listen."""
    members = [(0, True), *((i, False) for i in range(1, listeners + 1))]
    title = f"1 room, {listeners} listeners + 1 sender"
    return Scenario("broadcast", title, {"broadcast-0": members}, window)


def chat(rooms: int, size: int, window: int) -> Scenario:
    """``rooms`` rooms of ``size`` users, every user sending."""
    found = {f"chat-{r}": [(r * size + u, True) for u in range(size)] for r in range(rooms)}
    title = f"{rooms} rooms x {size} users, all sending"
    return Scenario("chat", title, found, window)


class Group:
    """The load-generator processes of one scenario against one server."""

    def __init__(self, scenario: Scenario, server: processes.Server, count: int) -> None:
        self.scenario = scenario
        self.server = server
        self.count = max(1, min(count, len(scenario.clients)))
        self.children: list[child.Child] = []

    async def start(self, padding: int, timeout: float) -> float:
        """Start the processes and connect every client; the seconds connecting took."""
        clients = self.scenario.clients
        room_senders = {
            room: [i for i, s in members if s] for room, members in self.scenario.rooms.items()
        }
        for k in range(self.count):
            name = f"load generator {k}"
            self.children.append(await child.Child.start(name, "bench.fanout_client"))
        started = time.monotonic()
        await self.ask(
            [
                {
                    "op": "connect",
                    "url": f"{self.server.ws_base}/chat",
                    "clients": clients[k :: self.count],
                    "room_senders": room_senders,
                    "padding": padding,
                }
                for k in range(self.count)
            ],
            timeout,
        )
        return time.monotonic() - started

    def tell(self, commands: list[dict[str, Any]]) -> None:
        """Send one command to each process."""
        for process, command in zip(self.children, commands, strict=True):
            process.send(command)

    async def answers(self, timeout: float) -> list[dict[str, Any]]:
        """One answer line from each process."""
        return list(await asyncio.gather(*(c.receive(timeout) for c in self.children)))

    async def ask(self, commands: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Send one command to each process and wait for their answers."""
        self.tell(commands)
        return await self.answers(timeout)

    def cpu_seconds(self) -> float:
        """CPU seconds the processes have used so far."""
        return sum(c.cpu_seconds() for c in self.children)

    async def close(self) -> None:
        """Ask every process to close its sockets and exit; kill those that do not."""
        await asyncio.gather(*(c.stop({"op": "quit"}, grace=15) for c in self.children))


def merge_histograms(parts: Sequence[dict[str, int]]) -> dict[int, int]:
    """Sum histograms that came through JSON (string keys)."""
    total: Counter[int] = Counter()
    for part in parts:
        total.update({int(k): v for k, v in part.items()})
    return dict(total)


def latency_figures(histogram: dict[int, int]) -> dict[str, float]:
    """Percentiles in milliseconds of a latency histogram, and its sample count."""
    return {
        "samples": sum(histogram.values()),
        "p50_ms": histogram_percentile(histogram, 0.50) * 1000,
        "p90_ms": histogram_percentile(histogram, 0.90) * 1000,
        "p99_ms": histogram_percentile(histogram, 0.99) * 1000,
        "p999_ms": histogram_percentile(histogram, 0.999) * 1000,
        "max_ms": histogram_percentile(histogram, 1.0) * 1000,
    }


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


@dataclass
class Reading:
    """CPU of the server and the load generators, and the node's metrics, at one moment."""

    server_cpu: float
    clients_cpu: float
    postgres_cpu: float
    metrics: dict[str, float] | None

    @classmethod
    async def take(cls, group: Group, durable: bool) -> Reading:
        server_cpu = group.server.cpu_seconds()
        clients_cpu = group.cpu_seconds()
        postgres_cpu = processes.postgres_cpu_seconds()
        metrics = await processes.scrape(group.server.base) if durable else None
        return cls(server_cpu, clients_cpu, postgres_cpu, metrics)


async def measure(
    group: Group,
    durable: bool,
    load: dict[str, Any],
    args: argparse.Namespace,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One phase (``load``: mode and window or per-sender rate) and its merged figures."""
    start = time.monotonic() + LEAD
    command = {
        "op": "phase",
        "id": int(start * 1000),
        **load,
        "start": start,
        "warmup": args.warmup,
        "duration": args.duration,
        "drain": args.drain,
        "max_outstanding": args.max_outstanding,
    }
    group.tell([command] * group.count)
    await sleep_until(start + args.warmup)
    spy = await pyspy.start(group.server.process.pid, args.duration, profile) if profile else None
    try:
        first = await Reading.take(group, durable)
        await sleep_until(start + args.warmup + args.duration)
        last = await Reading.take(group, durable)
        timeout = LEAD + args.warmup + args.duration + 2 * args.drain + 30
        sent_answers = await group.answers(timeout)
        sent: dict[str, int] = {}
        for answer in sent_answers:
            sent.update(answer["sent"])
        expect = {"op": "expect", "id": command["id"], "sent": sent, "timeout": args.drain}
        results = await group.ask([expect] * group.count, args.drain + 30)
        figures = summarise(group, load, sent, sent_answers, results, first, last, args.duration)
        if spy is not None and profile is not None:
            figures["profile"] = await pyspy.finish(spy, profile)
    finally:
        if spy is not None and spy.returncode is None:
            spy.kill()
            await spy.wait()
    return figures


def summarise(
    group: Group,
    load: dict[str, Any],
    sent: dict[str, int],
    sent_answers: list[dict[str, Any]],
    results: list[dict[str, Any]],
    first: Reading,
    last: Reading,
    duration: float,
) -> dict[str, Any]:
    """The figures of one phase, from every process's answers and the two readings."""
    members = group.scenario.members

    def total(key: str) -> int:
        return sum(int(r[key]) for r in results)

    sent_window = total("sent_window")
    figures: dict[str, Any] = {
        **load,
        "sent": sum(sent.values()),
        "sent_in_window": sent_window,
        "sent_per_s": sent_window / duration,
        "delivered_in_window": total("received_window"),
        "delivered_per_s": total("received_window") / duration,
        "expected_copies": total("expected"),
        "received_copies": total("received"),
        "missing": total("missing"),
        "extra": total("extra"),
        "reordered": total("reordered"),
        "stray": total("stray"),
        "unreturned_at_drain": sum(int(a["unreturned"]) for a in sent_answers),
        "skipped": total("skipped"),
        "settle_seconds": max(float(r["settle_seconds"]) for r in results),
        "latency": latency_figures(merge_histograms([r["latency"] for r in results])),
        "server_cpu_percent": (last.server_cpu - first.server_cpu) / duration * 100,
        "clients_cpu_percent": (last.clients_cpu - first.clients_cpu) / duration * 100,
        "postgres_cpu_percent": (last.postgres_cpu - first.postgres_cpu) / duration * 100,
        "errors": [e for r in results for e in r["errors"]][:10],
    }
    if load["mode"] == "rate":
        offered = load["rate"] * group.scenario.senders
        lag = merge_histograms([r["lag"] for r in results])
        figures["offered_per_s"] = offered
        figures["send_lag_p99_ms"] = histogram_percentile(lag, 0.99) * 1000
        figures["sustained"] = (
            figures["skipped"] == 0 and figures["delivered_per_s"] >= 0.9 * offered * members
        )
    if first.metrics is not None and last.metrics is not None:
        delta = processes.metrics_delta(first.metrics, last.metrics)
        figures["node"] = processes.commit_figures(delta)
    return figures


def losses(figures: dict[str, Any]) -> int:
    """Copies missing, repeated, out of order, or arriving after their phase was settled."""
    return int(figures["missing"] + figures["extra"] + figures["reordered"] + figures["stray"])


# -- the run ---------------------------------------------------------------------------


def profile_path(
    args: argparse.Namespace, scenario: Scenario, key: str, load: float | None
) -> Path | None:
    """Where to write py-spy's samples of the node at this point, if it is the one asked."""
    if key != "durable" or args.profile is None:
        return None
    if load is None:
        wanted = args.profile == "saturation"
    else:
        wanted = args.profile != "saturation" and math.isclose(float(args.profile), load)
    if not wanted:
        return None
    point = "saturation" if load is None else f"load-{load:g}"
    return report.RESULTS / f"fanout-{scenario.name}-durable-{point}.pyspy.txt"


async def run_scenario(
    scenario: Scenario, servers: dict[str, processes.Server], args: argparse.Namespace
) -> dict[str, Any]:
    """Saturation on both servers, then each fixed load on both."""
    groups: dict[str, Group] = {}
    result: dict[str, Any] = {
        "title": scenario.title,
        "clients": len(scenario.clients),
        "rooms": len(scenario.rooms),
        "senders": scenario.senders,
        "copies_per_message": scenario.members,
        "window": scenario.window,
    }
    try:
        connect: dict[str, float] = {}
        for key in SERVERS:
            groups[key] = Group(scenario, servers[key], args.processes)
            connect[key] = await groups[key].start(args.padding, args.connect_timeout)
        result["connect_seconds"] = connect
        saturation: dict[str, Any] = {}
        for key in SERVERS:
            profile = profile_path(args, scenario, key, None)
            window = {"mode": "window", "window": scenario.window}
            saturation[key] = await measure(groups[key], key == "durable", window, args, profile)
        result["saturation"] = saturation
        lower = min(saturation[key]["sent_per_s"] for key in SERVERS)
        points = []
        for fraction in args.loads:
            offered = fraction * lower
            point: dict[str, Any] = {"load": fraction, "offered_per_s": offered}
            if offered > 0:
                rate = {"mode": "rate", "rate": offered / scenario.senders}
                for key in SERVERS:
                    profile = profile_path(args, scenario, key, fraction)
                    point[key] = await measure(groups[key], key == "durable", rate, args, profile)
            points.append(point)
        result["loads"] = points
    finally:
        for group in groups.values():
            await group.close()
    result["targets"] = targets(result, args.target_load)
    result["chart"] = str(chart(scenario, result))
    return result


def targets(result: dict[str, Any], target_load: float) -> dict[str, Any]:
    """The two figures the targets are about, and whether they are met."""
    saturation = result["saturation"]
    base_rate = saturation["baseline"]["delivered_per_s"]
    ratio = saturation["durable"]["delivered_per_s"] / base_rate if base_rate else math.nan
    found: dict[str, Any] = {
        "throughput": {
            "about": "durable delivered/s at saturation / baseline's",
            "ratio": ratio,
            "required": THROUGHPUT_TARGET,
            "met": ratio >= THROUGHPUT_TARGET,
        }
    }
    point = next(
        (p for p in result["loads"] if math.isclose(p["load"], target_load) and "durable" in p),
        None,
    )
    if point is not None:
        base_p99 = point["baseline"]["latency"]["p99_ms"]
        durable_p99 = point["durable"]["latency"]["p99_ms"]
        commit = point["durable"]["node"]["average_commit_ms"] or 0.0
        bound = P99_FACTOR * base_p99 + commit
        found["latency"] = {
            "about": f"durable p99 at {target_load:.0%} load <= 2 x baseline p99 + one commit",
            "load": target_load,
            "offered_per_s": point["offered_per_s"],
            "baseline_p99_ms": base_p99,
            "durable_p99_ms": durable_p99,
            "average_commit_ms": commit,
            "bound_ms": bound,
            "met": durable_p99 <= bound,
        }
    return found


def chart(scenario: Scenario, result: dict[str, Any]) -> Path:
    """Latency (p50, p99) against delivered rate: the fixed loads, then saturation."""
    series: dict[str, Sequence[tuple[float, float]]] = {}
    for key in SERVERS:
        phases = [p[key] for p in result["loads"] if key in p] + [result["saturation"][key]]
        for name in ("p50", "p99"):
            series[f"{key} {name}"] = [
                (f["delivered_per_s"], f["latency"][f"{name}_ms"]) for f in phases
            ]
    return report.line_chart(
        f"fanout-{scenario.name}",
        f"fanout {scenario.name}: {scenario.title}",
        f"delivered messages/s (copies received; last point: saturation, window {scenario.window})",
        "end-to-end latency, ms",
        series,
    )


def failures(result: dict[str, Any]) -> list[str]:
    """Every phase that lost, duplicated or reordered a copy, or logged a client error."""
    found = []
    for name, scenario in result["scenarios"].items():
        phases = [("saturation", scenario["saturation"])] + [
            (f"{p['load']:.0%} load", p) for p in scenario["loads"]
        ]
        for label, point in phases:
            for key in SERVERS:
                figures = point.get(key)
                if figures is None:
                    continue
                if losses(figures) or figures["errors"]:
                    found.append(
                        f"{name}, {label}, {key}: {figures['missing']} copies missing, "
                        f"{figures['extra']} extra, {figures['reordered']} out of order, "
                        f"{figures['stray']} after their phase"
                        + (f"; errors: {figures['errors']}" if figures["errors"] else "")
                    )
    return found


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start both servers once; run each scenario against them."""
    server_version = await scratch.server_version(url)
    plans = {
        "broadcast": broadcast(args.listeners, args.window),
        "chat": chat(args.rooms, args.room_size, args.chat_window),
    }
    results: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        servers = {
            "baseline": await stack.enter_async_context(
                processes.baseline(args.startup, args.event_loop, args.gc_threshold)
            ),
            "durable": await stack.enter_async_context(
                processes.durable_node(
                    url,
                    "chat.py",
                    args.startup,
                    hibernate_after=str(args.hibernate_after),
                    event_loop=args.event_loop,
                    gc_threshold=str(args.gc_threshold),
                )
            ),
        }
        for name in args.scenarios:
            try:
                results[name] = await run_scenario(plans[name], servers, args)
            except child.ChildError as error:
                tails = "\n".join(
                    f"--- {server.name} stderr:\n{server.stderr_tail()}"
                    for server in servers.values()
                )
                raise child.ChildError(f"{name}: {error}\n{tails}") from None
    result: dict[str, Any] = {
        "benchmark": "fanout",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": report.environment(server_version),
        "scenarios": results,
    }
    result["failures"] = failures(result)
    return result


# -- output ----------------------------------------------------------------------------


def _row(label: str, server: str, f: dict[str, Any]) -> list[str]:
    latency = f["latency"]
    return [
        label,
        server,
        f"{f['sent_per_s']:,.0f}",
        f"{f['delivered_per_s']:,.0f}",
        f"{latency['p50_ms']:.2f}",
        f"{latency['p90_ms']:.2f}",
        f"{latency['p99_ms']:.2f}",
        f"{latency['max_ms']:.1f}",
        str(losses(f)),
        f"{f['server_cpu_percent']:.0f}%",
        f"{f['clients_cpu_percent']:.0f}%",
        f"{f.get('postgres_cpu_percent', 0):.0f}%",
        _commit(f),
    ]


def _commit(f: dict[str, Any]) -> str:
    node = f.get("node")
    if not node or not node["flushes"]:
        return ""
    return f"{node['average_commit_ms']:.2f} ({node['events_appended'] / node['flushes']:.1f})"


def _ratio(base: dict[str, Any], durable: dict[str, Any]) -> list[str]:
    def share(key: str, inner: str | None = None) -> str:
        b = base[key] if inner is None else base[key][inner]
        d = durable[key] if inner is None else durable[key][inner]
        return f"x{d / b:.2f}" if b else "-"

    return [
        "",
        "durable/baseline",
        share("sent_per_s"),
        share("delivered_per_s"),
        share("latency", "p50_ms"),
        share("latency", "p90_ms"),
        share("latency", "p99_ms"),
        share("latency", "max_ms"),
        "",
        "",
        "",
        "",
        "",
    ]


def render_scenario(name: str, s: dict[str, Any]) -> str:
    """One scenario's table and its target lines."""
    rows = []
    sat = s["saturation"]
    label = f"saturation, window {s['window']}"
    rows += [_row(label, "baseline", sat["baseline"]), _row("", "durable", sat["durable"])]
    rows.append(_ratio(sat["baseline"], sat["durable"]))
    notes = []
    for point in s["loads"]:
        if "durable" not in point:
            continue
        label = f"{point['load']:.0%} load, {point['offered_per_s']:,.0f} msg/s"
        rows += [_row(label, "baseline", point["baseline"]), _row("", "durable", point["durable"])]
        rows.append(_ratio(point["baseline"], point["durable"]))
        for key in SERVERS:
            if not point[key]["sustained"]:
                notes.append(f"note: {key} did not sustain {label} (skipped or delivered < 90%)")
    header = [
        "point",
        "server",
        "sent msg/s",
        "delivered/s",
        "p50 ms",
        "p90",
        "p99",
        "max",
        "lost",
        "server CPU",
        "clients CPU",
        "PostgreSQL CPU",
        "commit ms (ev/flush)",
    ]
    lines = [
        f"{name}: {s['title']} ({s['clients']} sockets, {s['copies_per_message']} copies "
        f"per message); connect {s['connect_seconds']['baseline']:.1f} s baseline, "
        f"{s['connect_seconds']['durable']:.1f} s durable",
        "",
        report.table(header, rows),
        *notes,
        "",
    ]
    throughput = s["targets"]["throughput"]
    lines.append(
        f"target (throughput): durable delivered/s at saturation / baseline's = "
        f"{throughput['ratio']:.0%} (needs >= {THROUGHPUT_TARGET:.0%}): "
        + ("met" if throughput["met"] else "NOT MET")
    )
    latency = s["targets"].get("latency")
    if latency is not None:
        lines.append(
            f"target (latency): at {latency['load']:.0%} load ({latency['offered_per_s']:,.0f} "
            f"msg/s), durable p99 {latency['durable_p99_ms']:.2f} ms <= 2 x baseline p99 "
            f"{latency['baseline_p99_ms']:.2f} + average commit "
            f"{latency['average_commit_ms']:.2f} = {latency['bound_ms']:.2f} ms: "
            + ("met" if latency["met"] else "NOT MET")
        )
    profiled = [("saturation", sat)] + [
        (f"{p['load']:.0%} load", p) for p in s["loads"] if "durable" in p
    ]
    for point, figures in profiled:
        profile = figures["durable"].get("profile")
        if profile and "self" in profile:
            lines.append(f"py-spy of the durable node at {point} ({profile['samples']} samples,")
            lines.append(f"  {profile['path']}); self share of the top functions:")
            lines += [f"  {share:6.1%}  {fn}" for fn, share in profile["self"]]
            lines.append("  inclusive share:")
            lines += [f"  {share:6.1%}  {fn}" for fn, share in profile["inclusive"]]
        elif profile:
            lines.append(f"py-spy failed: {profile.get('error')}")
    lines.append(f"chart: {s['chart']}")
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    p = result["parameters"]
    env = result["environment"]
    lines = [
        f"fanout: {p['warmup']:g} s warm-up + {p['duration']:g} s measured per point, "
        f"{p['processes']} load-generator processes, {p['padding']} B padding; "
        f"PostgreSQL {env['postgresql']}, {env['cpus']} CPUs, load "
        f"{env['load_average'][0]:.1f} at the end",
        "delivered/s = copies received by all clients in the window; latency = receive time "
        "- send time of every copy; lost = missing + repeated + out-of-order + late copies; "
        "CPU in % of one core",
        "",
    ]
    for name, scenario in result["scenarios"].items():
        lines += [render_scenario(name, scenario), ""]
    if result["failures"]:
        lines.append("!" * 78)
        lines.append("FAILURE: messages were lost, duplicated or reordered:")
        lines += [f"  {failure}" for failure in result["failures"]]
        lines.append("!" * 78)
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------


def _fractions(text: str) -> list[float]:
    values = [float(x) for x in text.split(",") if x.strip()]
    if not values or any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError("fractions in (0, 1], comma-separated")
    return values


def _scenarios(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names or any(n not in ("broadcast", "chat") for n in names):
        raise argparse.ArgumentTypeError("broadcast and/or chat, comma-separated")
    return names


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--database-url", default=scratch.server_url(), help="server to use")
    add("--scenarios", type=_scenarios, default=["broadcast", "chat"], help="which to run")
    add("--listeners", type=int, default=100, help="broadcast: listeners in the room")
    add("--window", type=int, default=64, help="broadcast: outstanding messages at saturation")
    add("--rooms", type=int, default=200, help="chat: rooms")
    add("--room-size", type=int, default=5, help="chat: users per room, all sending")
    add("--chat-window", type=int, default=2, help="chat: outstanding messages per user")
    add(
        "--loads",
        type=_fractions,
        default=[0.25, 0.5, 0.75],
        help="fixed loads, as fractions of the lower saturated send rate",
    )
    add("--target-load", type=float, default=0.5, help="the load the p99 target is read at")
    add("--warmup", type=float, default=1.0, help="seconds before each measured window")
    add("--duration", type=float, default=5.0, help="measured seconds per point")
    add("--drain", type=float, default=10.0, help="seconds to wait for late copies")
    add("--max-outstanding", type=int, default=1000, help="open loop: skip sends beyond this")
    add("--processes", type=int, default=2, help="load-generator processes per server")
    add("--padding", type=int, default=64, help="bytes of padding per message")
    add("--hibernate-after", type=float, default=600.0, help="the node's idle seconds")
    processes.add_event_loop_option(parser)
    add(
        "--gc-threshold",
        type=int,
        default=Settings.model_fields["gc_threshold"].default,
        help="young-generation GC threshold of both servers (0: Python's default)",
    )
    add("--connect-timeout", type=float, default=120.0, help="seconds to connect the clients")
    add("--startup", type=float, default=60.0, help="seconds to wait per server")
    add(
        "--profile",
        nargs="?",
        const="saturation",
        metavar="POINT",
        help="py-spy the node at saturation (the default) or at one of --loads (raw stacks)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the tables and write the JSON."""
    args = parser().parse_args(argv)
    if min(args.listeners, args.rooms, args.room_size, args.window, args.chat_window) < 1:
        print("error: --listeners, --rooms, --room-size and the windows must be at least 1")
        return 2
    if args.duration <= 0 or args.warmup < 0 or args.processes < 1:
        print("error: --duration must be positive, --warmup not negative, --processes >= 1")
        return 2
    if not 0 < args.target_load <= 1:
        print("error: --target-load must be a fraction in (0, 1]")
        return 2
    if not any(math.isclose(args.target_load, load) for load in args.loads):
        args.loads = sorted({*args.loads, args.target_load})
    if args.profile not in (None, "saturation"):
        try:
            point = float(args.profile)
        except ValueError:
            point = math.nan
        if not any(math.isclose(point, load) for load in args.loads):
            print("error: --profile takes 'saturation' or one of the --loads fractions")
            return 2
    outcome: dict[str, Any] = {}

    async def kept(url: str) -> dict[str, Any]:
        outcome.update(await run(url, args))
        return outcome

    code = report.run_on_scratch(
        "fanout", args.database_url, kept, render, (processes.ServerError, child.ChildError)
    )
    if code == 0 and outcome.get("failures"):
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
