"""SEQ|TIME arguments: a point in an object's history, as the history commands take it
(parsed by ``service.history.points``, which the admin API shares)."""

from __future__ import annotations

from datetime import datetime

from service.cli.errors import CommandError
from service.history import points as shared

#: What the help texts say a point is.
HELP = shared.HELP


def point(text: str, what: str = "point") -> int | datetime:
    """A seq or a time; CommandError for anything else, or a time without a zone."""
    try:
        return shared.point(text, what)
    except shared.PointError as error:
        raise CommandError(str(error)) from None


def time(text: str, what: str = "time") -> datetime:
    """An instant; CommandError for anything else, or a time without a zone."""
    try:
        return shared.time(text, what)
    except shared.PointError as error:
        raise CommandError(str(error)) from None
