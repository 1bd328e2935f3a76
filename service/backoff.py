"""Exponential backoff: the delays between attempts of a retry loop."""

from __future__ import annotations


class Backoff:
    """Delays that start at ``first`` and double after each failure, up to ``cap``.

    Retry loops that wait on a database share it: short first delays, because most outages
    seen by one connection are a single lost link, and a cap, so that a long outage is
    noticed soon after it ends.
    """

    __slots__ = ("_cap", "_delay", "_first")

    def __init__(self, first: float, cap: float) -> None:
        self._first = first
        self._cap = cap
        self._delay = first

    def next(self) -> float:
        """The delay before the next attempt; the one after it is twice as long (capped)."""
        delay = self._delay
        self._delay = min(delay * 2, self._cap)
        return delay

    def reset(self) -> None:
        """An attempt succeeded: the next failure starts from ``first`` again."""
        self._delay = self._first
