"""What the history commands print: rich tables for people, JSON lines for scripts, and a
progress bar (on stderr) for work that takes more than a second.

stdout carries only the data; everything else (the database banner, notes, the bar) goes
to stderr, so ``durable ... --json | jq`` reads clean lines.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from service.history import json_shapes
from service.ports.history import Progress

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

#: Columns of a table when stdout is not a terminal (a pipe, a file) and COLUMNS is unset.
PIPE_WIDTH = 200

#: Seconds of work before a progress bar appears.
PROGRESS_AFTER = 1.0


def add_json_flag(parser: argparse.ArgumentParser, instead_of: str = "a table") -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line (stable keys, ISO 8601 times) "
        f"instead of {instead_of}",
    )


def console(file: IO[str] | None = None) -> Console:
    """A console on stdout; as wide as the terminal, or PIPE_WIDTH when it is not one."""
    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    # No markup or emoji codes: values such as "[1,2]" or ":x:" are shown as they are.
    return Console(
        file=file, width=width, highlight=False, soft_wrap=False, markup=False, emoji=False
    )


def show(*renderables: RenderableType) -> None:
    """Print tables (and the blank lines between them) on stdout. To a terminal as rich
    draws them; to a pipe or a file without the spaces rich pads each line with."""
    if sys.stdout.isatty():
        screen = console()
        for renderable in renderables:
            screen.print(renderable)
        return
    buffer = io.StringIO()
    printer = console(buffer)
    for renderable in renderables:
        printer.print(renderable)
    lines(line.rstrip() for line in buffer.getvalue().splitlines())


def note(text: str) -> None:
    """A line for the person, not the data: on stderr."""
    print(text, file=sys.stderr, flush=True)


def json_lines(shapes: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line on stdout, flushed (a follower reads them as they come)."""
    sys.stdout.write("".join(json_shapes.dumps(shape) + "\n" for shape in shapes))
    sys.stdout.flush()


def lines(texts: Iterable[str]) -> None:
    """Plain lines on stdout, flushed."""
    sys.stdout.write("".join(text + "\n" for text in texts))
    sys.stdout.flush()


def when(moment: datetime | None) -> str:
    """A time as the tables show it: ISO 8601, whole, so it can be pasted as a TIME."""
    return "" if moment is None else moment.isoformat()


@contextmanager
def progress(description: str) -> Iterator[Progress]:
    """A callback for ``(done, total)`` that shows a bar on stderr once the work has taken
    PROGRESS_AFTER seconds (never on a stderr that is not a terminal)."""
    started = time.monotonic()
    bar: Any = None
    task: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar, task
        if bar is None:
            if time.monotonic() - started < PROGRESS_AFTER or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import Progress as Bar

            bar = Bar(console=Console(stderr=True), transient=True)
            bar.start()
            task = bar.add_task(description, total=total or None)
        bar.update(task, completed=done, total=total or None)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()
