"""Smoke test of bench.dashboard: a tiny run end to end (log, node, Chromium, joins and leaves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import run_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.mark.timeout(300)
def test_the_dashboard_benchmark_runs_and_reports_sane_figures(
    database_url: str, tmp_path: Path
) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium at /usr/bin/chromium (install it: apt-get install chromium)")
    stdout, result = run_benchmark(
        "dashboard",
        database_url,
        tmp_path,
        *("--events", "25000", "--repeat", "1"),
        *("--rate", "20", "--duration", "2", "--hold", "0.3"),
        timeout=300,
    )
    assert "timeline of one object with 25,000 events" in stdout and "presence:" in stdout
    assert result["fill"]["events"] == 25000
    steps = result["timeline"]["browser"]
    assert steps["open: navigation to the first page rendered"]["median_ms"] > 0
    assert set(steps) == {
        "open: navigation to the first page rendered",
        *("older", "oldest", "newer", "newest", "slider to the middle"),
        *("state at the newest event", "state 9,999 events past a snapshot"),
    }
    assert all(page["median_ms"] > 0 for page in result["timeline"]["api_pages"].values())
    presence = result["presence"]
    # Every client's join and leave showed in the page, and it ended as the lobby did.
    assert presence["client_failures"] == []
    assert presence["joins"] == presence["joins_seen"] == presence["clients"] == 40
    assert presence["leaves"] == presence["leaves_seen"] == 40
    assert presence["count_shown_at_the_end"] == "1"
    assert 0 < presence["join_lag"]["p50_ms"] <= presence["join_lag"]["max_ms"]
