"""Process-wide settings that make a node faster without changing what it does.

Garbage collection: a node keeps many long-lived objects (sockets, object state, pooled
connections, the loaded application) and makes many short-lived ones per event. With
CPython's default young-generation threshold (700 allocations) a collection runs every few
hundred events, and the older generations that follow walk the long-lived objects again
and again: measured with ``python -m bench.append``, that was a sixth of the store's
Python time. A larger threshold makes young collections rare (cycles are still found,
only later), and freezing what start-up created keeps it out of every full collection.
"""

from __future__ import annotations

import gc


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
