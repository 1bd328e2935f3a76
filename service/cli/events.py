"""``durable events OBJECT``: an object's log, readable: what each client sent, what changed
in storage, sockets accepted and closed, alarms; ``--follow`` keeps printing as events
commit."""

from __future__ import annotations

import argparse

from service.cli import options, output, pages, points
from service.cli.event_lines import PAGE, EventPrinter
from service.cli.history_access import run_history
from service.history import json_shapes
from service.ports.history import HistoryService
from service.settings import Settings

#: Seconds between reads while following, once caught up. Following polls: nodes send a
#: NOTIFY only for inbox work, never per flush (a NOTIFY serialises every commit), and a read
#: of one object's next events by seq is an index lookup.
POLL = 0.1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``events`` to the ``durable`` command."""
    parser = commands.add_parser(
        "events",
        help="an object's events, readable (--follow: as they commit)",
        description="Print an object's events in order, one a line: seq, the time its commit "
        "ran, its type, and what it did: the text a client sent and who sent it (from the "
        "socket's attachment or user: tag), the storage keys written and their new values, "
        "sockets accepted and closed (tags, codes), alarms set and deleted.",
        epilog="examples: durable events CHAT/lobby --type message_received; "
        "durable events CHAT/lobby --since 2026-12-07T18:00:00Z --json; "
        "durable events CHAT/lobby --follow",
    )
    parser.add_argument("object", metavar="OBJECT", help="BINDING/NAME or the object's 64-hex id")
    parser.add_argument(
        "--since",
        metavar="SEQ|TIME",
        help="from this event, or from this ISO 8601 time with its zone (inclusive)",
    )
    parser.add_argument(
        "--until", metavar="SEQ|TIME", help="up to this event, or up to this time (inclusive)"
    )
    parser.add_argument(
        "--type",
        dest="types",
        action="extend",
        nargs="+",
        metavar="T",
        help="only events of these types (e.g. message_received storage_put)",
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="after the last event, keep printing new ones as they commit (Ctrl-C stops)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL,
        metavar="SECONDS",
        help=f"with --follow: seconds between reads once caught up (default {POLL})",
    )
    output.add_json_flag(parser, "readable lines")
    options.add_options(parser, options.COMMON)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    since, until = points.followed_range(args)

    async def show(history: HistoryService) -> int:
        found = await history.find(args.object)
        printer = EventPrinter(history, as_json=args.json, with_object=False)
        label = json_shapes.label_of(found)
        printer.name(found.object_id, label)
        after: int | None = None

        async def print_page() -> tuple[int, bool]:
            nonlocal after
            # By seq, which is safe to follow: an object's seq order is decided before its
            # commit (the expected version), so no event can commit behind one read already.
            page = await history.events(
                found.object_id,
                since=since,
                until=until,
                types=args.types,
                after=after,
                limit=PAGE,
            )
            if page.events:
                output.lines(await printer.render(page.events))
                after = page.events[-1].seq
            return len(page.events), page.cursor is not None

        printed = await pages.print_all(
            print_page,
            follow=args.follow,
            poll=args.poll,
            following=lambda: f"following {label} after seq {after or 0} (Ctrl-C stops)",
        )
        if not printed:
            output.note(f"no events of {label} in that range")
        return 0

    return run_history(settings, show)
