"""Smoke test of bench.crossnode: a tiny run of the real benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark


@pytest.mark.slow
def test_crossnode_times_both_placements_and_leaves_the_outbox_empty(
    database_url: str, tmp_path: Path
) -> None:
    stdout, result = run_benchmark(
        "crossnode",
        database_url,
        tmp_path,
        *("--rooms", "2", "--messages", "20", "--warmup", "2", "--startup", "20"),
    )
    assert "split / local" in stdout
    for placement in ("local", "split"):
        figures = result[placement]
        assert figures["messages"] == 2 * 2 * 20
        assert figures["messages_per_second"] > 0
        latency = figures["latency"]
        assert 0 < latency["median_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert result["outbox_rows_left"] == 0
