"""Running a history command: its database (banner on stderr), checked to be migrated, the
history service opened on it, and the history's errors turned into one-line messages."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from service.cli.database import database, require_migrated
from service.cli.errors import CommandError
from service.ports.errors import StoreUnavailableError
from service.ports.history import HistoryError, HistoryService
from service.settings import Settings

#: A history command's work, given the open service; returns the exit code.
Work = Callable[[HistoryService], Awaitable[int]]


def run_history(settings: Settings, work: Work) -> int:
    """Run ``work`` on the history of the command's database; exit code 1 with a clear
    message for an unknown object, a point outside the history, an unmigrated or
    unreachable database."""
    with database(settings, announce=False) as (url, _):
        require_migrated(url)
        settings = settings.model_copy(update={"database_url": url})
        try:
            return asyncio.run(_run(settings, work))
        except HistoryError as error:
            raise CommandError(str(error)) from error
        except StoreUnavailableError as error:
            raise CommandError(f"the database did not answer: {error}") from error
        except BrokenPipeError:
            # The reader went away (``| head``): what it wanted it has. Python would
            # complain at exit while flushing stdout again, so point it at nothing.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0


async def _run(settings: Settings, work: Work) -> int:
    from service.history_root import open_history

    async with open_history(settings) as history:
        return await work(history)
