"""py-spy sampling of a server process: raw collapsed stacks, summed by function."""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any


async def start(pid: int, duration: float, path: Path) -> asyncio.subprocess.Process | None:
    """py-spy sampling the server for the measured window (raw collapsed stacks)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    path.parent.mkdir(exist_ok=True)
    return await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, math.floor(duration))),
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def finish(spy: asyncio.subprocess.Process, path: Path) -> dict[str, Any]:
    """Wait for py-spy; the functions with the largest shares of the samples."""
    try:
        await asyncio.wait_for(spy.wait(), 60)
    except TimeoutError:
        spy.kill()
        await spy.wait()
    if spy.returncode != 0 or not path.exists():
        return {"error": f"py-spy exited with {spy.returncode}", "path": str(path)}
    return {"path": str(path), **summary(path.read_text())}


def summary(raw: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares per function (line numbers dropped) of collapsed stacks.

    The inclusive list leaves out the frames every sample shares (the process's main, the
    event loop's run), which say nothing about where the time goes.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_function(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not samples:
        return {"samples": 0, "self": [], "inclusive": []}
    root = max(inclusive.values())
    below = Counter({name: n for name, n in inclusive.items() if n < root})
    return {
        "samples": samples,
        "self": [(name, n / samples) for name, n in own.most_common(top)],
        "inclusive": [(name, n / samples) for name, n in below.most_common(top)],
    }


def _function(frame: str) -> str:
    """``name (path/to/file.py:12)`` -> ``name (file.py)``."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(file).parts[-2:])})" if file else name
