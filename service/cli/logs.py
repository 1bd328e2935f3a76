"""``durable logs OBJECT``: what an object's code logged in its turns, each line with the seq
of its turn; ``--follow`` keeps printing lines as their turns commit."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from service.cli import options, output, pages, points
from service.cli.history_access import run_history
from service.history import json_shapes
from service.ports.history import HistoryService, LoggedLine
from service.settings import Settings

if TYPE_CHECKING:
    from rich.table import Table

#: Lines read per query.
PAGE = 1000

#: Seconds between reads while following, once caught up (as ``events --follow``: nodes
#: send no NOTIFY per flush, and a read of one object's next lines is an index lookup).
POLL = 0.1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``logs`` to the ``durable`` command."""
    parser = commands.add_parser(
        "logs",
        help="what an object's handlers logged (--follow: as their turns commit)",
        description="Print the lines an object's code logged through Python's logging in its "
        "turns (fetch, WebSocket handlers, alarm, RPC methods, constructor), in order: the "
        "seq of the turn (the object's seq when it ended, so its lines follow its events in "
        "durable events), when each was logged, its level, its logger and its message, with "
        "the traceback of a logged exception. Lines are committed with their turn's events: "
        "none is sampled, and none is lost once the turn's output reached a client.",
        epilog="examples: durable logs CHAT/lobby; durable logs CHAT/lobby --since 120 --until "
        "140; durable logs CHAT/lobby --follow --json",
    )
    parser.add_argument("object", metavar="OBJECT", help="BINDING/NAME or the object's 64-hex id")
    parser.add_argument(
        "--since",
        metavar="SEQ|TIME",
        help="from the turn that ended at this seq, or from this ISO 8601 time with its zone "
        "(inclusive)",
    )
    parser.add_argument(
        "--until",
        metavar="SEQ|TIME",
        help="up to the turns that ended at this seq, or up to this time (inclusive)",
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="after the last line, keep printing new ones as their turns commit (Ctrl-C stops)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL,
        metavar="SECONDS",
        help=f"with --follow: seconds between reads once caught up (default {POLL})",
    )
    output.add_json_flag(parser)
    options.add_options(parser, options.COMMON)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    since, until = points.followed_range(args)

    async def show(history: HistoryService) -> int:
        found = await history.find(args.object)
        label = json_shapes.label_of(found)
        after: tuple[int, int] | None = None

        async def print_page() -> tuple[int, bool]:
            nonlocal after
            # By (seq, id), which is safe to follow: an object's lines commit in that order,
            # so none can commit behind one read already.
            page = await history.logs(
                found.object_id, since=since, until=until, after=after, limit=PAGE
            )
            if page.lines:
                if args.json:
                    output.json_lines(json_shapes.log_line(line, label) for line in page.lines)
                else:
                    output.show(_table(page.lines, header=after is None))
                last = page.lines[-1]
                after = (last.seq, last.id)
            return len(page.lines), page.cursor is not None

        printed = await pages.print_all(
            print_page,
            follow=args.follow,
            poll=args.poll,
            following=lambda: f"following the log of {label} (Ctrl-C stops)",
        )
        if not printed:
            output.note(f"no log lines of {label} in that range")
        return 0

    return run_history(settings, show)


def _table(lines: list[LoggedLine], *, header: bool) -> Table:
    """A page of lines as a table (a page after the first, while following, without the
    header)."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, show_header=header)
    table.add_column("seq", justify="right")
    for column in ("time", "level", "logger", "message"):
        table.add_column(column)
    for line in lines:
        table.add_row(
            str(line.seq),
            output.when(line.logged_at),
            json_shapes.level_name(line.level),
            line.logger,
            line.message,
        )
    return table
