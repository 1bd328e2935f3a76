"""Server processes for the benchmarks: a durable node or the bare baseline, started,
awaited until ready, scraped for metrics and measured for memory, then stopped.

Every server runs in a process of its own, so that the load generator's CPU is never
counted as the server's, and a server's resident memory can be read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
import asyncpg

from service import tuning

#: The project root: servers run from there so that ``bench`` and ``service`` import.
ROOT = Path(__file__).resolve().parents[1]

#: The benchmark applications served by durable nodes.
APPS = Path(__file__).resolve().parent / "apps"

#: Counters and sums read from the node's /metrics.
_METRIC = re.compile(r"^(durable_[a-z_]+)\s+([0-9.eE+-]+)$", re.MULTILINE)

#: Cumulative buckets of the flush-duration histogram.
_COMMIT_BUCKET = re.compile(
    r'^durable_commit_seconds_bucket\{le="([^"]+)"\}\s+([0-9.eE+-]+)$', re.MULTILINE
)


class ServerError(Exception):
    """A server process did not start or died; the message carries its stderr."""


@dataclass
class Server:
    """A server process and the base URL it answers on."""

    name: str
    process: asyncio.subprocess.Process
    base: str
    stderr: IO[bytes]

    @property
    def ws_base(self) -> str:
        """The base URL with the ws:// scheme."""
        return "ws" + self.base.removeprefix("http")

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines the process wrote to stderr."""
        self.stderr.seek(0)
        return b"\n".join(self.stderr.read().splitlines()[-lines:]).decode(errors="replace")

    def resident_kib(self) -> int:
        """The process's resident memory (VmRSS) in KiB."""
        return resident_kib(self.process.pid)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        return cpu_seconds(self.process.pid)


def resident_kib(pid: int) -> int:
    """VmRSS of process ``pid`` in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ServerError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid``, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat (utime, stime), counted from the state field as 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without DURABLE_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def server(
    name: str, argv: list[str], env: dict[str, str], port: int, startup: float
) -> AsyncIterator[Server]:
    """Start a server process, wait until /healthz answers 200, stop it on the way out."""
    with tempfile.TemporaryFile() as stderr:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr
        )
        running = Server(name, process, f"http://127.0.0.1:{port}", stderr)
        try:
            await wait_ready(running, startup)
            yield running
        finally:
            await stop(process)


def add_event_loop_option(parser: argparse.ArgumentParser) -> None:
    """``--event-loop``, the loop of both servers of a comparison, chosen as a node's is."""
    parser.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop of both servers (auto: uvloop when installed, as a node does)",
    )


def event_loop_name(choice: str) -> str:
    """The loop a node given ``DURABLE_EVENT_LOOP=choice`` runs on: uvloop or asyncio."""
    return "uvloop" if tuning.loop_factory(choice) is not None else "asyncio"


def baseline(
    startup: float = 60.0, event_loop: str = "asyncio", gc_threshold: int = 0
) -> contextlib.AbstractAsyncContextManager[Server]:
    """The bare aiohttp broadcast server (``bench.baseline_server``), nothing stored.

    ``event_loop`` and ``gc_threshold`` as for a node, so that a comparison can hold the
    process tuning equal (``auto``: uvloop when installed).
    """
    port = free_port()
    argv = [
        *(sys.executable, "-m", "bench.baseline_server", "--port", str(port)),
        *("--event-loop", event_loop_name(event_loop), "--gc-threshold", str(gc_threshold)),
    ]
    return server("baseline", argv, server_env({}), port, startup)


def durable_node(
    database_url: str, app: str, startup: float = 60.0, **settings: str
) -> contextlib.AbstractAsyncContextManager[Server]:
    """``python -m service serve bench/apps/<app>`` on ``database_url``.

    ``settings`` are Settings fields, passed as DURABLE_<NAME> (``hibernate_after="0.2"``).
    """
    port = free_port()
    env = server_env(
        {
            "DATABASE_URL": database_url,
            "DURABLE_HOST": "127.0.0.1",
            "DURABLE_PORT": str(port),
            "DURABLE_NODE_ID": "bench-node",
            "DURABLE_LOG_LEVEL": "WARNING",
            **{f"DURABLE_{name.upper()}": value for name, value in settings.items()},
        }
    )
    argv = [sys.executable, "-m", "service", "serve", str(APPS / app)]
    return server("durable node", argv, env, port, startup)


async def wait_ready(running: Server, timeout: float) -> None:
    """Poll /healthz until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if running.process.returncode is not None:
                raise ServerError(
                    f"{running.name} exited with {running.process.returncode}:\n"
                    + running.stderr_tail()
                )
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(running.base + "/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise ServerError(f"{running.name} not ready after {timeout:.0f} s:\n" + running.stderr_tail())


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL if it takes more than 15 seconds."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 15)
    except TimeoutError:
        process.kill()
        await process.wait()


async def scrape(base: str) -> dict[str, float]:
    """The node's durable_* metrics (counters, sums, counts, and commit buckets as le:<bound>)."""
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as response:
        text = await response.text()
    found = {name: float(value) for name, value in _METRIC.findall(text)}
    found.update({f"le:{bound}": float(count) for bound, count in _COMMIT_BUCKET.findall(text)})
    return found


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What each metric gained between two scrapes."""
    return {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}


def bucket_bound(delta: dict[str, float], fraction: float) -> float | None:
    """The smallest histogram bound (seconds) under which ``fraction`` of the commits fell."""
    buckets = sorted((float(k[3:]), v) for k, v in delta.items() if k.startswith("le:"))
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= fraction * total:
            return bound
    return None


def commit_figures(delta: dict[str, float]) -> dict[str, float | None]:
    """Events, flushes and commit times of a node between two scrapes (``metrics_delta``)."""
    flushes = delta.get("durable_flushes_total", 0.0)
    median = bucket_bound(delta, 0.5)
    p99 = bucket_bound(delta, 0.99)
    return {
        "flushes": flushes,
        "events_appended": delta.get("durable_events_appended_total", 0.0),
        "average_commit_ms": (
            delta.get("durable_commit_seconds_sum", 0.0) / flushes * 1000 if flushes else None
        ),
        "commit_median_at_most_ms": None if median is None else median * 1000,
        "commit_p99_at_most_ms": None if p99 is None else p99 * 1000,
    }


def postgres_cpu_seconds(postmaster: int | None = None) -> float:
    """User plus system CPU seconds of PostgreSQL processes on this machine so far: those of
    the server whose postmaster is ``postmaster`` (``postmaster_of``), or of every server.

    The database shares the machine's cores with the servers and load generators; its CPU
    is part of what persistence costs. Backends that ended between two readings are
    missed, so take readings around a phase whose connections stay open. Other sessions of
    the same server count too: for a figure of the benchmark's own, give it a server of its
    own.
    """
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        if not name.startswith("postgres"):
            continue
        fields = text.rsplit(")", 1)[1].split()
        pid, parent = int(stat.parent.name), int(fields[1])
        if postmaster is None or postmaster in (pid, parent):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def postmaster_of(url: str) -> int | None:
    """The pid of the postmaster of the server at ``url``, if it runs on this machine (the
    parent of a backend of ours); None for a server elsewhere."""
    connection = await asyncpg.connect(url)
    try:
        backend: int = await connection.fetchval("SELECT pg_backend_pid()")
        try:
            text = Path(f"/proc/{backend}/stat").read_text()
        except OSError:
            return None
        return int(text.rsplit(")", 1)[1].split()[1])
    finally:
        await connection.close()
