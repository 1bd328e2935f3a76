"""``durable rerun OBJECT --app APP``: re-execute an object's recorded inbound work against the
application's current code, in a scratch object, and report the first divergence.

Exit codes: 0 when the rerun agrees with the log, ``EXIT_DIVERGED`` (3) when it found a
divergence, 1 when it could not run (unknown object, a range outside the log, an app that
does not load), 2 for a command line argparse refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import TYPE_CHECKING

from service import tuning
from service.cli import options
from service.cli.database import database, require_migrated
from service.cli.errors import CommandError
from service.settings import Settings

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from service.api.application import Application
    from service.rerun.report import Report

#: The exit code of a rerun that found a divergence (the CI's "these changes alter
#: behaviour"), apart from 1, a rerun that could not run.
EXIT_DIVERGED = 3

#: A rerun shorter than this shows no progress bar.
_QUIET_SECONDS = 1.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``rerun`` to the ``durable`` command."""
    rerun = commands.add_parser(
        "rerun",
        help="re-run an object's recorded inbound work against the current code",
        description="Deliver an object's recorded inbound events (frames, closes, errors, "
        "requests, alarm runs) to a scratch copy of it running the application's current code, "
        "which sends nothing and writes nothing to the log, and report the first turn that "
        "records something else than the log did. Exit code 0: no divergence; "
        f"{EXIT_DIVERGED}: a divergence; 1: the rerun could not run.",
    )
    rerun.add_argument("object", help="the object: BINDING/NAME (e.g. CHAT/lobby) or its 64-hex id")
    rerun.add_argument(
        "--app",
        required=True,
        help="the application whose code to run, as for serve: a directory with an app.py, "
        "a .py file, or a module, each optionally followed by :ATTRIBUTE",
    )
    rerun.add_argument(
        "--from",
        dest="start",
        type=int,
        metavar="SEQ",
        help="start at this seq: 1 (the default) or the seq of an inbound event",
    )
    rerun.add_argument(
        "--to",
        dest="end",
        type=int,
        metavar="SEQ",
        help="rerun the inbound events up to this seq (default: the object's last event)",
    )
    rerun.add_argument("--json", action="store_true", help="print the report as one JSON object")
    options.add_options(rerun, options.COMMON)
    rerun.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Load the application, open the history, rerun, print the report."""
    from service.loader import load_application

    application = load_application(args.app)
    with database(settings, announce=False) as (url, _):
        require_migrated(url)
        settings = settings.model_copy(update={"database_url": url})
        try:
            factory = tuning.loop_factory(settings.event_loop)
        except RuntimeError as error:
            raise CommandError(str(error)) from None
        tuning.tune_gc(settings.gc_threshold)
        with asyncio.Runner(loop_factory=factory) as runner:
            report = runner.run(_rerun(settings, application, args))
    if args.json:
        from service.rerun.report import to_json

        print(json.dumps(to_json(report), ensure_ascii=False))
    else:
        from service.rerun.report import render

        print(render(report))
    return EXIT_DIVERGED if report.divergence is not None else 0


async def _rerun(settings: Settings, application: Application, args: argparse.Namespace) -> Report:
    from service.history_root import open_history
    from service.ports.errors import StoreUnavailableError
    from service.ports.history import HistoryError
    from service.rerun.engine import rerun
    from service.rerun.report import RerunError

    bar = _Bar()
    try:
        async with open_history(settings) as history:
            return await rerun(
                history,
                application,
                args.object,
                start=args.start,
                end=args.end,
                limits=settings.limits(),
                progress=bar,
            )
    except (HistoryError, RerunError) as error:
        raise CommandError(str(error)) from None
    except StoreUnavailableError as error:
        raise CommandError(f"the database is unavailable: {error}") from None
    finally:
        bar.close()


class _Bar:
    """A progress bar on stderr, shown once a rerun has taken a second on a terminal."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._began = time.monotonic()
        self._shown_at = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._shown_at < 0.1:
            return
        self._shown_at = now
        if self._progress is None:
            if now - self._began < _QUIET_SECONDS or not self._console.is_terminal:
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("rerun: seqs"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("rerun", total=total)
        assert self._task is not None
        self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
