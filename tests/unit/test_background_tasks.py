"""The one task manager: keeps tasks until they end, logs failures, waits on the way out."""

from __future__ import annotations

import asyncio
import logging

from service.tasks import BackgroundTasks


async def test_tasks_are_kept_until_they_end_and_failures_are_logged(caplog):
    tasks = BackgroundTasks(logging.getLogger("test.tasks"))
    release = asyncio.Event()

    async def waits() -> str:
        await release.wait()
        return "done"

    async def fails() -> None:
        raise ValueError("boom")

    kept = tasks.spawn(waits(), name="waits")
    tasks.spawn(fails())
    for _ in range(3):  # the failing task runs, then its done callback
        await asyncio.sleep(0)
    assert len(tasks) == 1
    assert "background task failed: ValueError('boom')" in caplog.text
    release.set()
    await tasks.wait(1.0)
    assert len(tasks) == 0
    assert kept.result() == "done"


async def test_wait_gives_up_after_its_timeout():
    tasks = BackgroundTasks(logging.getLogger("test.tasks"))
    never = tasks.spawn(asyncio.Event().wait())
    await tasks.wait(0.01)
    assert len(tasks) == 1
    never.cancel()
