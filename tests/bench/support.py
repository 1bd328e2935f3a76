"""Running a benchmark the way a user does (``python -m bench.<name>``), at toy size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Not ``from bench import ...``: with tests/ on sys.path, ``bench`` would name this folder.
ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(
    name: str, database_url: str, results: Path, *options: str, timeout: float = 100
) -> tuple[str, dict[str, Any]]:
    """Run ``bench.<name>`` to completion; its printed output and its JSON result.

    The results go to ``results``, never over the figures of a full run in bench/results.
    """
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--database-url", database_url, *options],
        cwd=ROOT,
        env={**os.environ, "BENCH_RESULTS_DIR": str(results)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads((results / f"{name}.json").read_text())
    assert result["benchmark"] == name
    return done.stdout, result
