"""Smoke test of bench.failover: two kills with a short lease, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark


@pytest.mark.slow
def test_failover_times_each_kill_and_loses_nothing(database_url: str, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "failover",
        database_url,
        tmp_path,
        *("--kills", "2", "--lease", "1", "--before", "5", "--startup", "20"),
    )
    assert "kill to first message served by the survivor" in stdout
    assert len(result["rounds"]) == 2
    for round_ in result["rounds"]:
        # Served again once the lease lapsed, not before (the dead owner is fenced out).
        assert 0.5 < round_["failover_s"] < 1 + 10
        assert round_["lost"] == 0
    assert result["lost"] == 0 and result["sent"] > 0
