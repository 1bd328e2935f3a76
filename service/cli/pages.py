"""Printing a history in pages, and going on as it grows (``--follow``), for the commands
that read one object's log by a cursor (``durable events``, ``durable logs``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from service.cli import output


async def print_all(
    print_page: Callable[[], Awaitable[tuple[int, bool]]],
    *,
    follow: bool,
    poll: float,
    following: Callable[[], str],
) -> int:
    """Print page after page (``print_page`` prints the next one and says how many items it
    had and whether more are there) up to the last; with ``follow``, read on every ``poll``
    seconds once caught up, saying ``following()`` once. Returns how many were printed."""
    printed = 0
    announced = False
    while True:
        count, more = await print_page()
        printed += count
        if not more:
            if not follow:
                return printed
            if not announced:
                announced = True
                output.note(following())
            await asyncio.sleep(poll)
