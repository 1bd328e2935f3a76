"""``durable tail``: every object's events as they commit, in commit order, never skipping
one that commits late (the history's watermark tail)."""

from __future__ import annotations

import argparse
import asyncio

from service.cli import options, output
from service.cli.errors import CommandError
from service.cli.event_lines import PAGE, EventPrinter
from service.cli.history_access import run_history
from service.ports.history import HistoryService
from service.settings import Settings

#: Seconds between reads once caught up (nodes send no NOTIFY per flush: the tail polls).
POLL = 0.1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tail`` to the ``durable`` command."""
    parser = commands.add_parser(
        "tail",
        help="every object's events as they commit (Ctrl-C stops)",
        description="Print the events of every object as they commit, in commit order, each "
        "line naming its object as BINDING/NAME: position, object and seq, time, type and "
        "what it did. Starts with what commits from now on, or with the whole log "
        "(--from-start). A line is printed only once no transaction still running can "
        "commit an event before it, so none is ever skipped.",
        epilog="examples: durable tail; durable tail --json | jq .text",
    )
    parser.add_argument(
        "--from-start", action="store_true", help="print the whole log first, then follow"
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL,
        metavar="SECONDS",
        help=f"seconds between reads once caught up (default {POLL})",
    )
    output.add_json_flag(parser, "readable lines")
    options.add_options(parser, options.COMMON)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.poll <= 0:
        raise CommandError(f"--poll must be more than 0 seconds, not {args.poll}")

    async def follow(history: HistoryService) -> int:
        printer = EventPrinter(history, as_json=args.json, with_object=True)
        position = 0 if args.from_start else await history.head()
        output.note(f"following every object after position {position} (Ctrl-C stops)")
        while True:
            page = await history.tail(position, limit=PAGE)
            if page.events:
                output.lines(await printer.render(page.events))
            position = page.position
            if len(page.events) < PAGE:
                await asyncio.sleep(args.poll)

    return run_history(settings, follow)
