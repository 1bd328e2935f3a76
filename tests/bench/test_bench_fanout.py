"""Smoke test of bench.fanout: a tiny run of the real benchmark, as a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark

LISTENERS, ROOMS, ROOM_SIZE = 6, 4, 3


@pytest.mark.slow
def test_fanout_benchmark_runs(database_url: str, tmp_path: Path) -> None:
    stdout, result = run_benchmark(
        "fanout",
        database_url,
        tmp_path,
        *("--listeners", str(LISTENERS), "--window", "4"),
        *("--rooms", str(ROOMS), "--room-size", str(ROOM_SIZE), "--chat-window", "2"),
        *("--warmup", "0.1", "--duration", "0.5", "--loads", "0.5", "--drain", "5"),
        *("--startup", "20"),
    )
    assert "target (throughput)" in stdout
    assert "target (latency)" in stdout
    assert result["failures"] == []
    scenarios = result["scenarios"]
    assert scenarios["broadcast"]["clients"] == LISTENERS + 1
    assert scenarios["broadcast"]["copies_per_message"] == LISTENERS + 1
    assert scenarios["chat"]["clients"] == ROOMS * ROOM_SIZE
    assert scenarios["chat"]["senders"] == ROOMS * ROOM_SIZE
    for name, scenario in scenarios.items():
        copies = scenario["copies_per_message"]
        [point] = scenario["loads"]
        assert point["load"] == 0.5
        for server in ("baseline", "durable"):
            for figures in (scenario["saturation"][server], point[server]):
                assert figures["sent"] > 0, (name, server)
                assert figures["delivered_per_s"] > 0
                assert figures["expected_copies"] == figures["sent"] * copies
                assert figures["received_copies"] == figures["expected_copies"]
                assert figures["missing"] == figures["extra"] == figures["reordered"] == 0
                latency = figures["latency"]
                assert latency["samples"] > 0
                assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
            durable_node = point["durable"]["node"]
            assert durable_node["flushes"] > 0
            assert durable_node["average_commit_ms"] > 0
        targets = scenario["targets"]
        assert targets["throughput"]["ratio"] > 0
        assert targets["latency"]["bound_ms"] > 0
        assert Path(scenario["chart"]).exists()
