"""Process-wide settings that make a node faster without changing what it does.

The event loop: uvloop when it is installed (``loop_factory``).

Garbage collection: a node keeps many long-lived objects (sockets, object state, pooled
connections, the loaded application) and makes many short-lived ones per event. With
CPython's default young-generation threshold (700 allocations) a collection runs every few
hundred events, and the older generations that follow walk the long-lived objects again
and again: measured with ``python -m bench.append``, that was a sixth of the store's
Python time. A larger threshold makes young collections rare (cycles are still found,
only later), and freezing what start-up created keeps it out of every full collection.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable


def tune_gc(threshold: int) -> None:
    """Freeze what exists now and collect the young generation every ``threshold`` allocations.

    ``threshold`` 0 leaves CPython's defaults as they are.
    """
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(threshold, middle, oldest)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a node runs on: ``asyncio``, ``uvloop``, or ``auto`` (uvloop if installed).

    uvloop (the ``fast`` extra) runs the same code with a faster loop and transport; the
    service does not depend on it. ``None`` means asyncio's own loop.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError(
                "event_loop is uvloop, but uvloop is not installed "
                "(pip install 'durable-objects[fast]')"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
