"""SEQ|TIME arguments: a point in an object's history, as the history commands take it
(parsed by ``service.history.points``, which the admin API shares)."""

from __future__ import annotations

import argparse
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


def followed_range(
    args: argparse.Namespace,
) -> tuple[int | datetime | None, int | datetime | None]:
    """``--since`` and ``--until`` of a command that can ``--follow`` (with ``--poll``):
    the two points; CommandError for a wrong one, an end given to --follow, or a poll of
    no time."""
    since = None if args.since is None else point(args.since, "--since")
    until = None if args.until is None else point(args.until, "--until")
    if args.follow and until is not None:
        raise CommandError("--follow reads on past the end: it takes no --until")
    if args.poll <= 0:
        raise CommandError(f"--poll must be more than 0 seconds, not {args.poll}")
    return since, until
