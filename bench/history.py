"""The history commands at size: ``state --at`` on a long log, and following a busy node.

Two parts, on one scratch database:

1. **state**: one room's log of ``--events`` events (default 1,000,000), written through the
   service's own store (``EventStore.append``) one chat message a turn (its
   ``message_received`` and a ``storage_put`` of a ring slot and the counter, so the state
   stays one size), with a snapshot attached to every turn that crosses a multiple of
   ``--snapshot-every``, exactly as a node's object does (``ObjectCore._finish``). The store
   keeps the two newest snapshots of an object and the first of each span of 10,000 seqs,
   as it does for a node. Then the state is rebuilt at several points: just after the
   second-newest snapshot, just before the newest, the end, an early point (seq 1,000,
   which replays from seq 0) and the middle's seq before (from the snapshot kept for the
   span before, the most a point folds), each
   timed in process (``LogHistory.state``, the median of ``--repeat``) and as the command a
   person runs (``durable state ROOM/long --at N --json``, wall time of the process).
2. **follow**: a durable node serving ``bench/apps/kept_chat.py`` under an open-loop chat
   load (``bench.fanout_client``) of ``--rate`` events per second (half as many messages:
   each is recorded and kept in storage, two events) for ``--duration`` seconds, while
   ``durable tail --json`` follows every object (the load spread over ``--rooms`` rooms of
   two), then while ``durable events ROOM --follow --json`` follows one room that carries
   the whole load. For each: the events per second
   the follower printed during the window, its lag (the time this process read a line minus
   the event's ``recorded_at``, the time its commit began) at p50 and p99, and whether it
   printed every event committed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from bench import fanout, processes, report, scratch
from service.events import snapshot, types, values
from service.events.fold import ObjectState, apply
from service.history.service import LogHistory
from service.ports.records import Append
from service.store.event_store import EventStore
from service.store.history_store import HistoryStore

#: Events each message of the follow part's load records (``bench/apps/kept_chat.py``).
EVENTS_PER_MESSAGE = 2

#: Storage keys of the ring of recent messages, as a chat room keeps them.
RING = 100

_FILLER = " the quick brown fox jumps over the lazy dog" * 2

#: Where a room's log and its newest snapshots stand.
_SNAPSHOTS = "SELECT seq FROM snapshots WHERE object_id = $1 ORDER BY seq"

#: Events committed after a position (every object), or of one object after a seq.
_COMMITTED_AFTER = "SELECT count(*) FROM events WHERE position > $1"
_ROOM_AFTER = "SELECT count(*) FROM events WHERE object_id = $1 AND seq > $2"
_ROOM_ID = "SELECT object_id FROM objects WHERE binding = 'CHAT' AND name = $1"


class HistoryBenchError(Exception):
    """The benchmark could not run to the end."""


# -- part 1: state at a point of a long log -----------------------------------------------


def _turn(number: int, socket_id: str) -> list[types.Event]:
    """One chat message: the frame, then the ring slot and the counter."""
    text = values.encode_str((f"user-{number % 37:02d}: message {number:07d}" + _FILLER)[:80])
    return [
        types.MessageReceived(socket_id=socket_id, text=text),
        types.StoragePut(entries={f"ring:{number % RING:03d}": text, "count": number + 1}),
    ]


async def write_log(store: EventStore, object_id: str, events: int, every: int) -> int:
    """Append ``events`` events (one accept, then two a message), snapshotting as a node
    would; returns the last seq."""
    claim = await store.claim(object_id, "ROOM", "long")
    state = ObjectState()
    seq = claim.last_seq
    socket_id = "s" * 32
    turns: list[list[types.Event]] = [
        [
            types.WebSocketAccepted(socket_id=socket_id, tags=["user:reader"]),
            types.AttachmentSet(socket_id=socket_id, attachment={"username": "reader"}),
        ]
    ]
    inflight: set[asyncio.Future[None]] = set()
    number = 0
    while seq < events:
        turn = turns.pop() if turns else _turn(number, socket_id)
        number += 0 if turn[0].type == "websocket_accepted" else 1
        turn = turn[: events - seq]
        for event in turn:
            apply(state, event)
        first, seq = seq, seq + len(turn)
        # The node's rule: a snapshot with every turn that crosses a multiple of ``every``.
        snap = (seq, snapshot.encode(state)) if seq // every > first // every else None
        inflight.add(
            asyncio.ensure_future(store.append(Append(object_id, claim.epoch, first, turn, snap)))
        )
        if len(inflight) >= 2000:
            done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                future.result()
    for future in inflight:
        await future
    await store.release(object_id, claim.epoch)
    return seq


async def _command_seconds(url: str, at: int) -> tuple[float, dict[str, Any]]:
    """Wall time of ``durable state ROOM/long --at N --json`` as a process, and its answer."""
    # As an installed command runs: with its modules' bytecode cached (pip compiles it at
    # install), not compiled again at every start.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["DATABASE_URL"] = url
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "state",
        "ROOM/long",
        "--at",
        str(at),
        "--json",
        env=env,
        cwd=processes.ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise HistoryBenchError(f"durable state --at {at} failed: {err.decode()[-500:]}")
    return seconds, json.loads(out)


async def state_part(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Write the long log, then rebuild its state at each point."""
    object_id = "5" * 64
    store = EventStore(url, "bench-history", pool_size=4)
    await store.open()
    started = time.perf_counter()
    try:
        last = await write_log(store, object_id, args.events, args.snapshot_every)
    finally:
        await store.close()
    written = time.perf_counter() - started
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("VACUUM (ANALYZE) events, snapshots, objects")
        kept = [row[0] for row in await connection.fetch(_SNAPSHOTS, object_id)]
    finally:
        await connection.close()
    if len(kept) < 2:
        raise HistoryBenchError(f"expected two snapshots kept, found {kept}")
    older, newest = kept[-2], kept[-1]
    points = {
        "early": min(1000, last),
        # The last seq of a span: the most a point folds (from the first of its span).
        "middle": last // 2 - 1,
        "just after a snapshot": older + 1,
        "just before the next": newest - 1,
        "end": last,
    }
    history_store = HistoryStore(url)
    await history_store.open()
    figures: dict[str, Any] = {}
    try:
        history = LogHistory(history_store)
        for label, seq in points.items():
            times = []
            for _ in range(args.repeat):
                begun = time.perf_counter()
                rebuilt = await history.state("ROOM/long", at=seq)
                times.append(time.perf_counter() - begun)
            command, shown = await _command_seconds(url, seq)
            if (shown["seq"], shown["snapshot_seq"]) != (seq, rebuilt.snapshot_seq):
                raise HistoryBenchError(f"the command and the service disagree at seq {seq}")
            figures[label] = {
                "seq": seq,
                "snapshot_seq": rebuilt.snapshot_seq,
                "folded": rebuilt.folded,
                "in_process_ms": statistics.median(times) * 1000,
                "command_ms": command * 1000,
            }
    finally:
        await history_store.close()
    return {
        "events": last,
        "snapshot_every": args.snapshot_every,
        "snapshots_kept": kept,
        "write_seconds": written,
        "write_events_per_second": last / written if written else None,
        "points": figures,
    }


# -- part 2: following a busy node ---------------------------------------------------------


@dataclass
class Follower:
    """A ``durable`` follower process and what it printed: each event's arrival and lag."""

    process: asyncio.subprocess.Process
    arrivals: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    #: Seconds from the client's send of the frame the event records (None: not a frame).
    since_sent: list[float | None] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    #: The position (tail) or seq (events) it said it follows from.
    after: int = 0

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            if not line.endswith(b"\n"):
                return  # cut short by the process's end
            now, monotonic = time.time(), time.monotonic()
            event = json.loads(line)
            self.arrivals.append(now)
            self.lags.append(now - datetime.fromisoformat(event["recorded_at"]).timestamp())
            # The load's frames carry their send time (``time.monotonic()``, system-wide).
            text = event["data"].get("text")
            parts = text.split(":", 4) if isinstance(text, str) else []
            self.since_sent.append(monotonic - float(parts[3]) if len(parts) == 5 else None)

    async def watch_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            if match := re.search(rb"following .* after (?:position|seq) (\d+)", line):
                self.after = int(match.group(1))
                self.started.set()


@contextlib.asynccontextmanager
async def follower(url: str, *argv: str) -> AsyncIterator[Follower]:
    """Start ``durable <argv> --json``; stop it on the way out."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "service", *argv, "--json"),
        env={**os.environ, "DATABASE_URL": url},
        cwd=processes.ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 24,
    )
    found = Follower(process)
    tasks = [asyncio.create_task(found.read()), asyncio.create_task(found.watch_stderr())]
    try:
        await asyncio.wait_for(found.started.wait(), 60)
        yield found
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _load(
    group: fanout.Group, rate: float, args: argparse.Namespace
) -> tuple[float, float, int]:
    """Run one open-loop phase; its measured window as (start, end) in wall-clock time, and
    the messages the clients sent."""
    start = time.monotonic() + fanout.LEAD
    per_sender = rate / EVENTS_PER_MESSAGE / group.scenario.senders
    command = {
        "op": "phase",
        "id": int(start * 1000),
        "mode": "rate",
        "rate": per_sender,
        "start": start,
        "warmup": args.warmup,
        "duration": args.duration,
        "drain": 10.0,
        "max_outstanding": 1000,
    }
    offset = time.time() - time.monotonic()
    group.tell([command] * group.count)
    answers = await group.answers(fanout.LEAD + args.warmup + args.duration + 60)
    sent = sum(sum(answer["sent"].values()) for answer in answers)
    return start + args.warmup + offset, start + args.warmup + args.duration + offset, sent


async def follow_phase(
    url: str,
    node: processes.Server,
    scenario: fanout.Scenario,
    argv: Sequence[str],
    room: str | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One load while one follower runs (of every object, or of ``room``): what it printed
    during the window, how late, and whether it printed every event committed."""
    group = fanout.Group(scenario, node, args.processes)
    try:
        await group.start(0, 120)  # the rooms exist from here: their sockets are accepted
        async with follower(url, *argv) as reader:
            connection = await asyncpg.connect(url)
            try:
                # The tail prints what commits after the position it starts from;
                # events --follow the room's whole log, then what commits.
                query, params = (
                    (_COMMITTED_AFTER, (reader.after,))
                    if room is None
                    else (_ROOM_AFTER, (await connection.fetchval(_ROOM_ID, room), 0))
                )
                begun, ended, sent = await _load(group, args.rate, args)
                committed = await connection.fetchval(query, *params)
            finally:
                await connection.close()
            deadline = time.monotonic() + 60
            while len(reader.arrivals) < committed and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            caught_up = time.time() - ended
            printed = len(reader.arrivals)
            in_window = [i for i, t in enumerate(reader.arrivals) if begun <= t < ended]
            lags = sorted(reader.lags[i] * 1000 for i in in_window)
            sent_lags = sorted(
                lag * 1000 for i in in_window if (lag := reader.since_sent[i]) is not None
            )
    finally:
        await group.close()
    return {
        "offered_per_second": args.rate,
        "sent": sent,
        "committed": committed,
        "printed": printed,
        "all_printed": printed == committed,
        "followed_per_second": len(in_window) / (ended - begun),
        "lag_p50_ms": report.percentile(lags, 0.5),
        "lag_p99_ms": report.percentile(lags, 0.99),
        "lag_max_ms": max(lags, default=float("nan")),
        "from_send_p50_ms": report.percentile(sent_lags, 0.5),
        "from_send_p99_ms": report.percentile(sent_lags, 0.99),
        "caught_up_seconds_after_load": caught_up,
    }


async def follow_part(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The tail over a load spread over rooms; then events --follow over one busy room."""
    settings = {"hibernate_after": "60", "heartbeat": "0"}
    async with processes.durable_node(url, "kept_chat.py", 60.0, **settings) as node:
        spread = fanout.chat(args.rooms, 2, 1)
        tail = await follow_phase(url, node, spread, ["tail"], None, args)
        busy = fanout.Scenario("busy", "1 room x 2 users", {"busy": [(0, True), (1, True)]}, 1)
        events = await follow_phase(
            url, node, busy, ["events", "CHAT/busy", "--follow"], "busy", args
        )
    return {"tail": tail, "events_follow": events}


# -- the run -------------------------------------------------------------------------------


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    server_version = await scratch.server_version(url)
    result: dict[str, Any] = {
        "benchmark": "history",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": report.environment(server_version),
    }
    if "state" in args.parts:
        result["state"] = await state_part(url, args)
    if "follow" in args.parts:
        result["follow"] = await follow_part(url, args)
    return result


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    env = result["environment"]
    lines = [
        f"history: PostgreSQL {env['postgresql']}, {env['cpus']} CPUs, "
        f"load {env['load_average'][0]:.1f} at the end"
    ]
    if "state" in result:
        s = result["state"]
        lines += [
            "",
            f"state --at: one room, {s['events']:,} events written through EventStore in "
            f"{s['write_seconds']:.1f} s ({s['write_events_per_second'] or 0:,.0f} events/s); "
            f"a snapshot every {s['snapshot_every']} events, kept: the two newest and the first "
            "of each span of 10,000 "
            f"(seq {', '.join(f'{q:,}' for q in s['snapshots_kept'])})",
            report.table(
                ["point", "seq", "from snapshot", "events folded", "in process ms", "command ms"],
                [
                    [
                        label,
                        f"{p['seq']:,}",
                        f"{p['snapshot_seq']:,}",
                        f"{p['folded']:,}",
                        f"{p['in_process_ms']:,.1f}",
                        f"{p['command_ms']:,.0f}",
                    ]
                    for label, p in s["points"].items()
                ],
            ),
        ]
    if "follow" in result:
        rows = []
        for label, key in (("durable tail", "tail"), ("durable events --follow", "events_follow")):
            f = result["follow"][key]
            rows.append(
                [
                    label,
                    f"{f['offered_per_second']:,.0f}",
                    f"{f['followed_per_second']:,.0f}",
                    f"{f['lag_p50_ms']:,.0f}",
                    f"{f['lag_p99_ms']:,.0f}",
                    f"{f['from_send_p50_ms']:,.0f}",
                    f"{f['from_send_p99_ms']:,.0f}",
                    f"{f['sent']:,}",
                    f"{f['printed']:,} / {f['committed']:,}",
                    f"{f['caught_up_seconds_after_load']:.1f}",
                ]
            )
        p = result["parameters"]
        lines += [
            "",
            f"following a chat load ({p['duration']:g} s window; tail: {p['rooms']} rooms of 2; "
            f"follow: one room of 2; every message is {EVENTS_PER_MESSAGE} events; lag: from "
            "the start of the "
            "commit (recorded_at) to the line, and from the client's send):",
            report.table(
                [
                    "follower",
                    "offered events/s",
                    "followed events/s",
                    "lag p50 ms",
                    "lag p99 ms",
                    "from send p50",
                    "p99",
                    "frames sent",
                    "printed / committed",
                    "done s after load",
                ],
                rows,
            ),
        ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.history", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--database-url", default=scratch.server_url(), help="server to use")
    add("--parts", default="state,follow", help="which parts: state, follow or both")
    add("--events", type=int, default=1_000_000, help="events in the long log")
    add("--snapshot-every", type=int, default=100, help="the node's snapshot_every")
    add("--repeat", type=int, default=3, help="in-process rebuilds per point (median shown)")
    add("--rate", type=float, default=10_000.0, help="events per second (two a message)")
    add("--rooms", type=int, default=50, help="rooms of two users under the tail's load")
    add("--duration", type=float, default=20.0, help="seconds of the measured window")
    add("--warmup", type=float, default=3.0, help="seconds of load before the window")
    add("--processes", type=int, default=2, help="load-generator processes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    args.parts = sorted({part.strip() for part in args.parts.split(",") if part.strip()})
    if not set(args.parts) <= {"state", "follow"} or min(args.events, args.repeat) < 1:
        print("error: --parts is state, follow or both; --events and --repeat at least 1")
        return 2
    if args.events < 4 * args.snapshot_every:
        print("error: --events must hold at least four snapshots' worth of events")
        return 2
    return report.run_on_scratch(
        "history",
        args.database_url,
        lambda url: run(url, args),
        render,
        (processes.ServerError, HistoryBenchError),
    )


if __name__ == "__main__":
    sys.exit(main())
