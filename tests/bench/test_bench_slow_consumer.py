"""Smoke test of bench.slow_consumer: a small run of the real script, as a subprocess (16 MB,
more than the kernel's socket buffers absorb before the node's own queue fills)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark


@pytest.mark.slow
def test_slow_consumer_benchmark_runs(database_url: str, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "slow_consumer",
        database_url,
        tmp_path,
        *("--broadcasts", "8000", "--max-buffered-bytes", "65536", "--settle", "0.2"),
        "--startup",
        "20",
    )
    assert "node RSS" in stdout
    assert result["rss_after_kib"] > 0
    # The stuck socket is closed past its bound; the sender stays.
    assert result["overflow_closes"] == 1
    assert result["open_sockets_after"] == 1
