"""Smoke test of bench.rerun: a tiny run end to end (node, clients, the rerun command, JSON)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark


@pytest.mark.slow
def test_the_rerun_benchmark_runs_and_reports_sane_figures(
    database_url: str, tmp_path: Path
) -> None:
    stdout, result = run_benchmark(
        "rerun", database_url, tmp_path, "--messages", "300", "--clients", "2", "--window", "8"
    )
    assert "rerun / live" in stdout
    live, rerun = result["live"], result["rerun"]
    assert live["messages"] == 300 and live["messages_per_second"] > 0
    # Every message, both upgrades and both closes were rerun, and agreed with the log.
    assert rerun["inbound_events"] == 300 + 2 * 2
    assert 0 < rerun["seconds"] <= rerun["wall_seconds"]
    assert result["rerun_to_live"] > 0
