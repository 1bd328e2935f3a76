"""Smoke test of bench.wake: a tiny run end to end (node, client, history, wakes, JSON)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench.support import run_benchmark


@pytest.mark.slow
def test_the_wake_benchmark_runs_and_reports_sane_figures(
    database_url: str, tmp_path: Path
) -> None:
    stdout, result = run_benchmark(
        "wake", database_url, tmp_path, "--histories", "100,1000", "--wakes", "10", "--warmup", "1"
    )
    assert "history events" in stdout
    assert result["build"]["events"] > 0
    for history in ("100", "1000"):
        figures = result["histories"][history]
        # Every wake is counted, kept or discarded (an object that was not hibernated).
        assert figures["samples"] + figures["discarded"] == 10
        assert figures["samples"] >= 5
        assert figures["replayed_events_max"] <= 10
        for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            assert 0 < figures["wake"][key] < 5_000
            # The handler starts before its reply reaches the client, sample by sample.
            assert figures["wake"][key] <= figures["roundtrip"][key]
        (first,) = figures["first_wake"]
        # The first wake replays the whole written history: no snapshot covers it.
        assert first["replayed_events"] >= int(history) - 2
        assert first["wake_ms"] > 0
        (events,) = figures["log_events"].values()
        assert events >= int(history)
    assert all(math.isfinite(v) and v > 0 for v in result["ratio_largest_to_smallest"].values())
    assert result["node"]["wakes"] >= 2 * (10 + 1 + 1)
    assert Path(result["chart"]).is_file()
