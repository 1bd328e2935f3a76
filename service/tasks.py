"""Background work: one small manager that keeps every task it started referenced until it
ends, logs how it failed, and lets its owner wait for what is left on the way out.

asyncio keeps only a weak reference to a task, so a task nobody holds may vanish mid-run;
and a failure nobody retrieves surfaces as "exception was never retrieved", at garbage
collection, far from its cause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundTasks:
    """The tasks one component runs beside its callers, until they end."""

    __slots__ = ("_log", "_tasks")

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Awaitable[T], *, name: str | None = None) -> asyncio.Future[T]:
        """Run ``work`` in the background (a coroutine becomes a task); return its future."""
        future = asyncio.ensure_future(work)
        if name is not None and isinstance(future, asyncio.Task):
            future.set_name(name)
        self._tasks.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._tasks.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._log.error("background task failed: %r", error, exc_info=error)

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until the tasks running now have ended."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
