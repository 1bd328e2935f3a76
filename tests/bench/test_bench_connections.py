"""Smoke test of bench.connections: a tiny run of the real benchmark, as a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark

SOCKETS = 200
PINGS = 100


@pytest.mark.slow
def test_connections_benchmark_runs(database_url: str, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "connections",
        database_url,
        tmp_path,
        *("--sockets", str(SOCKETS), "--rooms", "4", "--generators", "2"),
        *("--pings", str(PINGS), "--sample-every", "50", "--settle", "0.2"),
        *("--phase-timeout", "20", "--startup", "20"),
    )
    assert "auto-response" in stdout
    for server in ("baseline", "durable"):
        figures = result[server]
        assert figures["connect"]["sockets"] == SOCKETS
        assert figures["connect"]["failed"] == 0
        assert figures["connect"]["per_second"] > 0
        memory = figures["memory"]
        assert memory["rss_before_kib"] > 0
        assert memory["rss_open_kib"] > memory["rss_before_kib"]
        assert memory["idle_kib_per_socket"] > 0
        assert memory["collected_kib_per_socket"] > 0
        assert memory["curve"][0][0] == 0
        assert memory["curve"][-1][0] == SOCKETS
        assert len(memory["curve"]) >= 3
        pings = figures["pings"]
        assert pings["answered"] == PINGS
        assert pings["errors"] == {}
        assert 0 < pings["median_ms"] <= pings["p99_ms"] <= pings["max_ms"]
        assert 0 < pings["sockets_used"] <= PINGS
        assert memory["rss_after_pings_kib"] > 0
        assert figures["close"]["closed"] == SOCKETS
    durable = result["durable"]
    assert durable["hibernation"]["all_hibernated"]
    assert durable["hibernation"]["hibernated_objects"] == 4
    assert durable["pings"]["node"]["wakes"] == 0
    assert durable["pings"]["node"]["events_appended"] == 0
    assert durable["pings"]["node"]["live_objects_after"] == 0
    assert durable["close"]["open_in_log_after"] >= 0
    # Each room logs its auto-response pair and every accepted socket.
    assert durable["connect"]["node"]["events_appended"] >= SOCKETS
    assert result["durable_to_baseline"]["idle_kib_per_socket"] > 0
    assert (tmp_path / "connections.png").exists()
