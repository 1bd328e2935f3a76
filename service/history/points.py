"""SEQ|TIME as people write them: a point in an object's history, parsed alike by every
front end (the history commands' arguments, the admin API's parameters)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

#: What the help texts say a point is.
HELP = (
    "a seq (the state after that event, e.g. 42) or an ISO 8601 time with its zone "
    "(e.g. 2026-12-07T18:00:00+00:00 or ...Z; 'now')"
)

_SEQ = re.compile(r"[0-9]+")


class PointError(ValueError):
    """Text that is no point (or no time); the message says what to write instead."""


def point(text: str, what: str = "point") -> int | datetime:
    """A seq or a time; PointError for anything else, or a time without a zone."""
    if _SEQ.fullmatch(text):
        return int(text)
    return time(text, what)


def time(text: str, what: str = "time") -> datetime:
    """An instant; PointError for anything else, or a time without a zone (guessing it
    would silently shift the question by hours)."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PointError(
            f"{what} {text!r} is neither a seq nor an ISO 8601 time "
            "(e.g. 42, 2026-12-07T18:00:00+00:00, 2026-12-07T18:00:00Z or now)"
        ) from None
    if moment.utcoffset() is None:
        raise PointError(
            f"{what} {text!r} has no time zone: add one (e.g. {moment.isoformat()}+00:00 or Z)"
        )
    return moment
