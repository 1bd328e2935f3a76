"""Shared output of the benchmarks: percentiles, aligned tables, JSON results."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

#: Where results go: bench/results (git-ignored), or BENCH_RESULTS_DIR (the smoke tests
#: use their own, so that they never overwrite the figures of a full run).
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Re-raised as SIGINT, which asyncio.run turns into cancelling the main task: every
    # finally block runs (servers stopped) before KeyboardInterrupt leaves asyncio.run.
    signal.raise_signal(signal.SIGINT)


def stop_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so that servers are stopped and the scratch database dropped.

    A job started in the background of a non-interactive shell inherits SIGINT ignored;
    Python's own handler is put back first, or the re-raised SIGINT would do nothing.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` in 0..1); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def milliseconds(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p90, p99 and max of durations in seconds, in milliseconds."""
    return {
        "median_ms": percentile(seconds, 0.5) * 1000,
        "p90_ms": percentile(seconds, 0.9) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "max_ms": max(seconds, default=math.nan) * 1000,
    }


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def environment(server_version: str | None = None) -> dict[str, Any]:
    """Where the figures were taken: machine, Python, PostgreSQL, commit."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": server_version,
        "commit": _commit(),
    }


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def write(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` as bench/results/<name>.json and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def run_on_scratch(
    name: str,
    database_url: str,
    run: Callable[[str], Coroutine[Any, Any, dict[str, Any]]],
    render: Callable[[dict[str, Any]], str],
    failures: tuple[type[Exception], ...] = (),
) -> int:
    """Run one benchmark on a scratch database, print its table, write its JSON.

    Returns the process exit code: 1 for an expected ``failures`` error, 130 when
    interrupted (Ctrl-C or SIGTERM; the scratch database is dropped either way).
    """
    from bench import scratch

    stop_on_sigterm()
    try:
        with scratch.scratch_database(database_url) as url:
            result = asyncio.run(run(url))
    except failures as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(render(result))
    print(f"results: {write(name, result)}")
    return 0


def line_chart(
    name: str,
    title: str,
    x_label: str,
    y_label: str,
    series: dict[str, Sequence[tuple[float, float]]],
    log_x: bool = False,
) -> Path:
    """Plot ``series`` (label -> (x, y) points) as lines to bench/results/<name>.png.

    matplotlib comes with the ``bench`` extra (``pip install -e '.[bench]'``) and draws
    off-screen (the Agg backend), so no display is needed.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=110)
    try:
        for label, points in series.items():
            xs = [x for x, _ in points]
            ys = [y for _, y in points]
            axes.plot(xs, ys, marker="o", label=label)
        if log_x:
            axes.set_xscale("log")
        axes.set_title(title)
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout()
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}.png"
        figure.savefig(path)
    finally:
        pyplot.close(figure)
    return path
