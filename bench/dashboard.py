"""The admin dashboard at size, in a real headless Chromium: the timeline of an object with a
million events, and the presence view under a hundred joins and leaves a second.

One scratch database and one durable node (``bench/apps/lobby.py``, ``--admin``), two parts:

1. **timeline**: one object's log of ``--events`` events (default 1,000,000: an accept, its
   attachment, then chat messages and what each stored), written straight into the tables
   with one ``INSERT ... SELECT generate_series`` (seconds, not the store's minutes), then
   analyzed. The admin API's pages of it are timed from this process (the newest page,
   ``order=desc``; the page just below the middle; the first page), then the dashboard's
   timeline is opened ``--repeat`` times, each in a fresh browser context (nothing cached):
   the time from the navigation's start to the first page of events rendered (the page's
   own ``timeline-first-page`` mark), then the time each step of paging takes (older,
   oldest, newer, newest, and a jump of the slider to the middle of the log) from the click
   to its page on screen, and of time travel (the state and diff at the newest event, and
   at the event that folds the most). The log has the snapshots the store keeps of a log a
   node wrote (the first of each span of 10,000 seqs, and the newest), made with the
   service's own fold and checked against it.
2. **presence**: the dashboard's presence view of one lobby is open while real WebSocket
   clients join it at ``--rate`` a second for ``--duration`` seconds, each leaving
   ``--hold`` seconds after it joined (so as many leaves a second, once the first have
   left). A ``MutationObserver`` in the page notes when each user's row appears and
   disappears; the lag of a join is from the moment the client's connection was accepted
   (the accept is committed first) to its row in the page, the lag of a leave from the
   moment the client's close completed to its row gone. Whether the page keeps up: the lag
   in the first and the last seconds of the load, every join and leave seen, and the count
   it shows at the end against the sockets open. Chromium's main thread: the share of the
   load's wall time it was busy (DevTools' ``TaskDuration``).

Needs Playwright (the ``test`` extra) and Debian's Chromium at ``/usr/bin/chromium``; the
browser is never downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg

from bench import processes, report, scratch
from service.events import snapshot, types
from service.events.fold import ObjectState, apply

#: Debian's Chromium: Playwright must never download a browser of its own.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}

#: The long log's object, and the lobby of the presence part.
LONG = ("ROOM", "long")
LOBBY = ("LOBBY", "bench")
_SOCKET = "r" * 32

#: Seconds any one step in the page may take before the run fails.
STEP_TIMEOUT = 60.0

#: The long log has a snapshot at every multiple of this, and one at its end: what the store
#: keeps of a log the node wrote (the first of each span of 10,000 seqs, and the newest).
SNAPSHOT_SPAN = 10_000

#: Slots of the long log's ring of messages (as ``_FILL_EVENTS`` writes them).
RING = 100


class DashboardBenchError(Exception):
    """The benchmark could not run to the end."""


# -- part 1: the timeline of a long log ------------------------------------------------------

# The object, its one socket (closed), and its events: an accept, the socket's attachment,
# then chat messages, each followed by what it stored (a slot of a ring of 100, and the
# count), ten milliseconds apart, ending now.
_FILL_OBJECT = """
INSERT INTO objects (object_id, binding, name, last_seq) VALUES ($1, $2, $3, $4)
"""
_FILL_SOCKET = """
INSERT INTO websockets (object_id, socket_id, tags, attachment, node, closed_at, close_code)
VALUES ($1, $2, ARRAY['user:reader'], '{"username": "reader"}', 'bench-node', now(), 1000)
"""
_FILL_EVENTS = """
INSERT INTO events (object_id, seq, type, data, recorded_at)
SELECT $1, n,
       CASE WHEN n = 1 THEN 'websocket_accepted' WHEN n = 2 THEN 'attachment_set'
            WHEN n % 2 = 1 THEN 'message_received' ELSE 'storage_put' END,
       CASE WHEN n = 1 THEN json_build_object('socket_id', $2::text, 'tags',
                              json_build_array('user:reader'), 'hibernatable', true,
                              'url', NULL, 'protocol', NULL)
            WHEN n = 2 THEN json_build_object('socket_id', $2::text,
                              'attachment', json_build_object('username', 'reader'))
            WHEN n % 2 = 1 THEN json_build_object('socket_id', $2::text,
                              'text', 'message ' || n / 2, 'binary', NULL)
            ELSE json_build_object('entries', json_build_object(
                   'ring:' || lpad((n / 2 % 100)::text, 3, '0'), 'message ' || n / 2 - 1,
                   'count', n / 2 - 1)) END,
       now() - ($3::bigint - n) * interval '10 milliseconds'
  FROM generate_series(1, $3::bigint) AS n
"""


_FILL_SNAPSHOTS = """
INSERT INTO snapshots (object_id, seq, state) VALUES ($1, $2, $3::json)
"""


def long_event(n: int) -> types.Event:
    """Event ``n`` of the long log, as ``_FILL_EVENTS`` writes it."""
    if n == 1:
        return types.WebSocketAccepted(socket_id=_SOCKET, tags=["user:reader"])
    if n == 2:
        return types.AttachmentSet(socket_id=_SOCKET, attachment={"username": "reader"})
    if n % 2 == 1:
        return types.MessageReceived(socket_id=_SOCKET, text=f"message {n // 2}")
    slot = f"ring:{n // 2 % RING:03d}"
    return types.StoragePut(entries={slot: f"message {n // 2 - 1}", "count": n // 2 - 1})


def long_state(seq: int) -> ObjectState:
    """The long log's state after event ``seq``, by the service's fold: of the socket's two
    events, then of the last events that wrote the ring (every slot and the count are
    written again within 2 x RING events, so nothing older shows), with the count of
    messages received up to ``seq``."""
    state = ObjectState()
    first = max(3, seq - 2 * RING - 1)
    for n in (*range(1, min(seq, 2) + 1), *range(first, seq + 1)):
        apply(state, long_event(n))
    state.seq = seq
    state.messages = max(0, (seq - 1) // 2)
    return state


async def fill(url: str, events: int) -> float:
    """The long log written in one statement, with its snapshots; the seconds it took."""
    object_id = "7" * 64
    started = time.perf_counter()
    points = [*range(SNAPSHOT_SPAN, events, SNAPSHOT_SPAN), events]
    snapshots = [(object_id, seq, snapshot.encode(long_state(seq))) for seq in points]
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute(_FILL_OBJECT, object_id, *LONG, events)
            await connection.execute(_FILL_SOCKET, object_id, _SOCKET)
            await connection.execute(_FILL_EVENTS, object_id, _SOCKET, events)
            await connection.executemany(_FILL_SNAPSHOTS, snapshots)
        await connection.execute("VACUUM (ANALYZE) events, objects, websockets, snapshots")
        await check_fill(connection, object_id, events)
    finally:
        await connection.close()
    return time.perf_counter() - started


_EVENTS_AT = """
SELECT seq, type, version, data FROM events WHERE object_id = $1 AND seq = ANY($2::bigint[])
"""


async def check_fill(connection: asyncpg.Connection, object_id: str, events: int) -> None:
    """The rows are the events ``long_event`` makes (so the snapshots are of this log), and
    the fold of the last span from the snapshot before it is the last snapshot."""
    seqs = [1, 2, 3, 4, 5, 6, events - 1, events]
    for row in await connection.fetch(_EVENTS_AT, object_id, seqs):
        stored = types.from_row(row["type"], row["version"], row["data"])
        if stored != long_event(row["seq"]):
            raise DashboardBenchError(
                f"event {row['seq']} is {stored}, not {long_event(row['seq'])}"
            )
    if events > SNAPSHOT_SPAN:
        start = (events - 1) // SNAPSHOT_SPAN * SNAPSHOT_SPAN
        state = long_state(start)
        for n in range(start + 1, events + 1):
            apply(state, long_event(n))
        if snapshot.comparable(state) != snapshot.comparable(long_state(events)):
            raise DashboardBenchError(f"the snapshot at {events} is not the fold from {start}")


async def api_pages(base: str, events: int, repeat: int) -> dict[str, dict[str, float]]:
    """Wall time of the admin API's pages of the long log, from this process (ms)."""
    pages = {
        "newest (order=desc)": {"order": "desc"},
        "below the middle (order=desc, until)": {"order": "desc", "until": str(events // 2)},
        "first (order=asc)": {"order": "asc"},
        "after the middle (order=asc, cursor)": {"order": "asc", "cursor": str(events // 2)},
    }
    url = f"{base}/admin/api/objects/{quote('/'.join(LONG), safe='')}/events"
    figures = {}
    async with aiohttp.ClientSession() as session:
        for label, params in pages.items():
            times = []
            for _ in range(repeat + 1):
                begun = time.perf_counter()
                async with session.get(url, params={**params, "limit": "100"}) as response:
                    body = await response.json()
                times.append(time.perf_counter() - begun)
                if response.status != 200 or len(body["events"]) != 100:
                    raise DashboardBenchError(f"the {label} page: {response.status} {body}")
            figures[label] = {"first_ms": times[0] * 1000, "median_ms": _median_ms(times[1:])}
    return figures


def _median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


async def open_timeline(browser: Any, base: str, events: int) -> dict[str, float]:
    """One opening of the timeline in a fresh context, and each paging step (ms)."""
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        page.set_default_timeout(STEP_TIMEOUT * 1000)
        ref = quote("/".join(LONG), safe="")
        await page.goto(f"{base}/admin/#/object/{ref}/timeline")
        first = page.locator("#events tbody tr").first
        await first.wait_for()
        await page.wait_for_selector(f'#events tbody tr[data-seq="{events}"]')
        rendered = await page.evaluate(
            "() => performance.getEntriesByName('timeline-first-page')[0].startTime"
        )
        steps = {"open: navigation to the first page rendered": float(rendered)}
        middle = events // 2
        # Each step: the button clicked (None: the slider moved to the middle), and the seq
        # of the top row of the page it leads to.
        for label, button, top in (
            ("older", "Older →", events - 100),
            ("oldest", "Oldest", 100),
            ("newer", "← Newer", 200),
            ("newest", "Newest", events),
            ("slider to the middle", None, middle),
        ):
            begun = time.perf_counter()
            if button is None:
                await page.locator("#seq-slider").fill(str(middle))
            else:
                await page.click(f"text={button}")
            await page.wait_for_selector(f'#events tbody tr:first-child[data-seq="{top}"]')
            steps[label] = (time.perf_counter() - begun) * 1000
        # Time travel: a click on an event, to its state and what it changed on screen (a
        # replay from the snapshot at or before it, twice more for the diff). The newest
        # event, then the one 9,999 past a snapshot: the most a point folds.
        await page.click("text=Newest")
        for label, seq in (
            ("state at the newest event", events),
            ("state 9,999 events past a snapshot", _far_from_snapshots(events)),
        ):
            begun = time.perf_counter()
            if seq != events:
                await page.locator("#seq-input").fill(str(seq))
                await page.locator("#seq-input").press("Enter")
            else:
                await page.click(f'#events tbody tr[data-seq="{seq}"]')
            await page.wait_for_selector(f'#state[data-seq="{seq}"] #state-json', state="attached")
            steps[label] = (time.perf_counter() - begun) * 1000
        return steps
    finally:
        await context.close()


def _far_from_snapshots(events: int) -> int:
    """The seq that folds the most events from its snapshot: the last of a span."""
    spans = events // SNAPSHOT_SPAN
    return (spans // 2) * SNAPSHOT_SPAN + SNAPSHOT_SPAN - 1 if spans >= 2 else events - 1


async def timeline_part(base: str, browser: Any, args: argparse.Namespace) -> dict[str, Any]:
    """API pages, then ``--repeat`` openings of the timeline and its paging."""
    pages = await api_pages(base, args.events, args.repeat)
    openings = [await open_timeline(browser, base, args.events) for _ in range(args.repeat)]
    steps = {
        label: {
            "median_ms": statistics.median(o[label] for o in openings),
            "max_ms": max(o[label] for o in openings),
        }
        for label in openings[0]
    }
    return {"api_pages": pages, "browser": steps}


# -- part 2: presence under joins and leaves ---------------------------------------------------

#: Notes, in the page, when each user's row appears and leaves the presence table.
_WATCH = """() => {
    const seen = { joins: {}, leaves: {} };
    window.benchSeen = seen;
    const body = document.querySelector("#presence tbody");
    new MutationObserver((records) => {
        const now = Date.now();
        for (const record of records) {
            for (const node of record.addedNodes) {
                const user = node.dataset && node.dataset.user;
                if (user && !(user in seen.joins)) seen.joins[user] = now;
            }
            for (const node of record.removedNodes) {
                const user = node.dataset && node.dataset.user;
                if (user && !body.querySelector(`tr[data-user="${user}"]`)) {
                    seen.leaves[user] = now;
                }
            }
        }
    }).observe(body, { childList: true });
}"""


@dataclass
class Visit:
    """One client: when its join was accepted and its leave completed (epoch seconds)."""

    joined: float | None = None
    left: float | None = None


@dataclass
class Load:
    visits: dict[str, Visit] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


async def visit(
    session: aiohttp.ClientSession, url: str, user: str, hold: float, load: Load
) -> None:
    """Join, stay ``hold`` seconds, leave."""
    record = load.visits.setdefault(user, Visit())
    try:
        ws = await session.ws_connect(f"{url}?username={user}", heartbeat=None)
        record.joined = time.time()
        await asyncio.sleep(hold)
        await ws.close()
        record.left = time.time()
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        load.failures.append(f"{user}: {error!r}")


async def drive(base: str, args: argparse.Namespace) -> tuple[Load, float, float]:
    """Joins at ``--rate`` a second for ``--duration`` seconds, open loop; the load and its
    window in epoch seconds."""
    load = Load()
    url = f"{base.replace('http', 'ws', 1)}/lobby/{LOBBY[1]}"
    count = int(args.rate * args.duration)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic() + 0.2
        wall = time.time() + 0.2
        tasks = []
        for number in range(count):
            await asyncio.sleep(max(0.0, start + number / args.rate - time.monotonic()))
            user = f"u{number:06d}"
            tasks.append(asyncio.create_task(visit(session, url, user, args.hold, load)))
        await asyncio.gather(*tasks)
    return load, wall, wall + args.duration


def _lags(pairs: list[tuple[float, float | None]]) -> list[float]:
    return sorted((seen - done) * 1000 for done, seen in pairs if seen is not None)


def _figures(lags: list[float]) -> dict[str, float]:
    return {
        "p50_ms": report.percentile(lags, 0.5),
        "p95_ms": report.percentile(lags, 0.95),
        "p99_ms": report.percentile(lags, 0.99),
        "max_ms": max(lags, default=float("nan")),
    }


async def presence_part(base: str, browser: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The presence view open under the load; what it showed, and when."""
    async with aiohttp.ClientSession() as session:
        # The lobby exists (and stays with one socket) before the page opens.
        keeper = await session.ws_connect(
            f"{base.replace('http', 'ws', 1)}/lobby/{LOBBY[1]}?username=keeper", heartbeat=None
        )
        context = await browser.new_context(viewport=VIEWPORT)
        try:
            page = await context.new_page()
            page.set_default_timeout(STEP_TIMEOUT * 1000)
            ref = quote("/".join(LOBBY), safe="")
            await page.goto(f"{base}/admin/#/object/{ref}/presence")
            await page.wait_for_selector('#presence tr[data-user="keeper"]')
            await page.wait_for_function(
                "() => document.querySelector('#presence-facts').textContent.includes('live')"
            )
            await page.evaluate(_WATCH)
            devtools = await context.new_cdp_session(page)
            await devtools.send("Performance.enable")
            busy_before = await _task_seconds(devtools)
            load, begun, ended = await drive(base, args)
            busy = await _task_seconds(devtools) - busy_before
            # Until every leave has shown, or ten seconds.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                seen = await page.evaluate("() => window.benchSeen")
                if len(seen["leaves"]) >= len(load.visits):
                    break
                await asyncio.sleep(0.2)
            shown = await page.locator("#presence-count").text_content()
        finally:
            await context.close()
            await keeper.close()
    joins = [(v.joined, seen["joins"].get(u, 0) / 1000 or None) for u, v in load.visits.items()]
    leaves = [(v.left, seen["leaves"].get(u, 0) / 1000 or None) for u, v in load.visits.items()]
    joined = [(done, saw) for done, saw in joins if done is not None]
    left = [(done, saw) for done, saw in leaves if done is not None]
    edge = min(2.0, args.duration / 4)
    return {
        "offered_joins_per_second": args.rate,
        "clients": len(load.visits),
        "client_failures": load.failures[:10],
        "joins_seen": sum(saw is not None for _, saw in joined),
        "joins": len(joined),
        "leaves_seen": sum(saw is not None for _, saw in left),
        "leaves": len(left),
        "join_lag": _figures(_lags(joined)),
        "leave_lag": _figures(_lags(left)),
        "join_lag_first_seconds_p50_ms": report.percentile(
            _lags([(d, s) for d, s in joined if d < begun + edge]), 0.5
        ),
        "join_lag_last_seconds_p50_ms": report.percentile(
            _lags([(d, s) for d, s in joined if d >= ended - edge]), 0.5
        ),
        "count_shown_at_the_end": shown,
        "page_main_thread_busy": busy / max(ended - begun, 1e-9),
    }


async def _task_seconds(devtools: Any) -> float:
    metrics = await devtools.send("Performance.getMetrics")
    return float(next(m["value"] for m in metrics["metrics"] if m["name"] == "TaskDuration"))


# -- the run ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        raise DashboardBenchError(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    server_version = await scratch.server_version(url)
    result: dict[str, Any] = {
        "benchmark": "dashboard",
        "parameters": {k: v for k, v in vars(args).items() if k != "database_url"},
        "environment": report.environment(server_version),
    }
    if "timeline" in args.parts:
        seconds = await fill(url, args.events)
        result["fill"] = {"events": args.events, "seconds": seconds}
    settings = {"admin": "1", "heartbeat": "0", "hibernate_after": "60"}
    async with (
        processes.durable_node(url, "lobby.py", 60.0, **settings) as node,
        chromium() as browser,
    ):
        if "timeline" in args.parts:
            result["timeline"] = await timeline_part(node.base, browser, args)
        if "presence" in args.parts:
            result["presence"] = await presence_part(node.base, browser, args)
    result["environment"]["load_average"] = report.environment()["load_average"]
    return result


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of one run."""
    env = result["environment"]
    lines = [
        f"dashboard: PostgreSQL {env['postgresql']}, {env['cpus']} CPUs, "
        f"load {env['load_average'][0]:.1f} at the end; Chromium, 1280 x 800"
    ]
    if "timeline" in result:
        t = result["timeline"]
        f = result["fill"]
        lines += [
            "",
            f"timeline of one object with {f['events']:,} events (written with one INSERT in "
            f"{f['seconds']:.1f} s); the admin API's pages of 100, from this process:",
            report.table(
                ["page", "first ms", "median ms"],
                [
                    [label, f"{p['first_ms']:.1f}", f"{p['median_ms']:.1f}"]
                    for label, p in t["api_pages"].items()
                ],
            ),
            "",
            f"in the browser ({result['parameters']['repeat']} openings, a fresh context each; "
            "paging: from the click to the page on screen):",
            report.table(
                ["step", "median ms", "max ms"],
                [
                    [label, f"{s['median_ms']:.0f}", f"{s['max_ms']:.0f}"]
                    for label, s in t["browser"].items()
                ],
            ),
        ]
    if "presence" in result:
        p = result["presence"]
        joins, leaves = p["join_lag"], p["leave_lag"]
        lines += [
            "",
            f"presence: {p['offered_joins_per_second']:g} joins/s for "
            f"{result['parameters']['duration']:g} s, each client leaving after "
            f"{result['parameters']['hold']:g} s ({p['clients']:,} clients); lag from the "
            "join accepted (leave completed) to the row shown (gone):",
            report.table(
                ["", "seen", "p50 ms", "p95 ms", "p99 ms", "max ms"],
                [
                    [
                        label,
                        f"{seen:,} / {total:,}",
                        f"{lag['p50_ms']:.0f}",
                        f"{lag['p95_ms']:.0f}",
                        f"{lag['p99_ms']:.0f}",
                        f"{lag['max_ms']:.0f}",
                    ]
                    for label, seen, total, lag in (
                        ("joins", p["joins_seen"], p["joins"], joins),
                        ("leaves", p["leaves_seen"], p["leaves"], leaves),
                    )
                ],
            ),
            f"join lag p50 in the first seconds {p['join_lag_first_seconds_p50_ms']:.0f} ms, in "
            f"the last {p['join_lag_last_seconds_p50_ms']:.0f} ms; the page showed "
            f"{p['count_shown_at_the_end']} open at the end (1 expected: the keeper); its main "
            f"thread was busy {p['page_main_thread_busy']:.0%} of the load; client failures: "
            f"{len(p['client_failures'])}",
        ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--database-url", default=scratch.server_url(), help="server to use")
    add("--parts", default="timeline,presence", help="timeline, presence or both")
    add("--events", type=int, default=1_000_000, help="events in the long log")
    add("--repeat", type=int, default=5, help="openings of the timeline (median shown)")
    add("--rate", type=float, default=100.0, help="joins per second (as many leaves)")
    add("--duration", type=float, default=10.0, help="seconds of joins")
    add("--hold", type=float, default=0.5, help="seconds each client stays")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on a scratch database; print the table and write the JSON."""
    args = parser().parse_args(argv)
    args.parts = sorted({part.strip() for part in args.parts.split(",") if part.strip()})
    if not set(args.parts) <= {"timeline", "presence"} or not args.parts:
        print("error: --parts is timeline, presence or both")
        return 2
    if args.events < 1000 or args.repeat < 1 or args.rate <= 0 or args.duration <= 0:
        print("error: --events at least 1000, --repeat at least 1, --rate and --duration > 0")
        return 2
    return report.run_on_scratch(
        "dashboard",
        args.database_url,
        lambda url: run(url, args),
        render,
        (processes.ServerError, DashboardBenchError),
    )


if __name__ == "__main__":
    sys.exit(main())
