"""Smoke tests of bench.append and bench.roundtrip: tiny runs of the real benchmarks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark


@pytest.mark.slow
def test_append_counts_every_durable_event_and_its_baselines(
    database_url: str, tmp_path: Path
) -> None:
    stdout, result = run_benchmark(
        "append",
        database_url,
        tmp_path,
        *("--events", "2000", "--objects", "20", "--concurrency", "5"),
        *("--rounds", "1", "--insert-events", "50"),
    )
    assert "store / COPY" in stdout
    store = result["store"]
    assert store["committed"] == store["rows_in_table"] == 2000
    assert store["failed"] == 0
    assert result["copy"]["events_per_second"] > 0
    assert result["insert_per_commit"]["events_per_second"] > 0
    assert result["store_to_copy"] > 0
    assert result["target_store_to_copy"] == 0.5


@pytest.mark.slow
def test_roundtrip_times_every_send_on_both_servers(database_url: str, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "roundtrip",
        database_url,
        tmp_path,
        *("--clients", "3", "--messages", "20", "--warmup", "2", "--startup", "20"),
    )
    assert "durable / baseline" in stdout
    for server in ("baseline", "durable"):
        assert result[server]["messages"] == 20
        figures = result[server]["roundtrip"]
        assert 0 < figures["median_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert result["durable"]["node"]["events_appended"] >= 22
