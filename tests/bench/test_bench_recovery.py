"""Smoke test of bench.recovery: a tiny run end to end (node, reconnects, storm, JSON)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench.support import run_benchmark


@pytest.mark.slow
def test_the_recovery_benchmark_runs_and_reports_sane_figures(
    database_url: str, tmp_path: Path
) -> None:
    stdout, result = run_benchmark(
        "recovery",
        database_url,
        tmp_path,
        *("--missed", "30", "--repeats", "3", "--warmup", "1"),
        *("--storm-clients", "5", "--storm-seconds", "1"),
    )
    assert "in sync after 30 missed" in stdout
    recovery = result["recovery"]
    assert recovery["missed"] == 30 and recovery["exact"] is True
    for key in ("in_sync", "first_missed_frame", "nothing_missed"):
        assert all(0 < value < 10_000 for value in recovery[key].values())
    # The first missed message comes before the last one.
    assert recovery["first_missed_frame"]["max_ms"] <= recovery["in_sync"]["max_ms"]
    storm = result["storm"]
    assert storm["clients"] == 5 and storm["reconnects"] > 0
    assert (storm["exact"], storm["duplicates"], storm["missing"]) == (True, 0, 0)
    assert all(math.isfinite(value) for value in storm["catch_up"].values())
    assert result["node"]["events_appended"] > 30 * 4
