"""Smoke test of bench.history: a tiny run end to end (log, rebuilds, node, load, followers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_history_benchmark_runs_and_reports_sane_figures(
    database_url: str, tmp_path: Path
) -> None:
    stdout, result = run_benchmark(
        "history",
        database_url,
        tmp_path,
        *("--events", "1000", "--snapshot-every", "100", "--repeat", "1"),
        *("--rate", "200", "--rooms", "2", "--duration", "2", "--warmup", "0.5"),
        *("--processes", "1"),
        timeout=300,
    )
    assert "state --at" in stdout and "durable tail" in stdout
    state = result["state"]
    assert state["events"] == 1000 and state["snapshots_kept"] == [900, 1000]
    points = state["points"]
    # Replay starts from the newest snapshot at or before the point, or from seq 0.
    assert (points["just after a snapshot"]["snapshot_seq"], points["end"]["folded"]) == (900, 0)
    assert points["just before the next"]["folded"] == 99
    # Too short a log for a snapshot kept for good: the middle replays from seq 0.
    assert (points["middle"]["snapshot_seq"], points["middle"]["folded"]) == (0, 499)
    for follower in ("tail", "events_follow"):
        figures = result["follow"][follower]
        # Every event committed while the follower ran was printed, and none twice.
        assert figures["all_printed"], figures
        assert figures["committed"] > 0 and figures["followed_per_second"] > 0
        assert 0 < figures["lag_p50_ms"] <= figures["lag_p99_ms"]
