"""``durable objects``: the catalog, one object per row, with its sockets and its owner."""

from __future__ import annotations

import argparse

from service.cli import options, output
from service.cli.errors import CommandError
from service.cli.history_access import run_history
from service.history import json_shapes
from service.ports.history import HistoryService
from service.settings import Settings

#: Objects listed when --limit is not given.
DEFAULT_LIMIT = 100

#: Longest text --name takes (as the admin API's search).
MOST_SEARCH = 200


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``objects`` to the ``durable`` command."""
    parser = commands.add_parser(
        "objects",
        help="list the objects: events, last activity, live or hibernated, sockets",
        description="List the objects of the catalog, by binding and name: how many events "
        "each has, when it last changed, whether a node runs it now (live) or it hibernates, "
        "its open sockets and the node that owns it.",
        epilog="example: durable objects --binding CHAT --name lobby --live",
    )
    parser.add_argument("--binding", metavar="B", help="only objects of this binding (class)")
    parser.add_argument(
        "--name",
        metavar="TEXT",
        help=f"only objects whose name holds TEXT, in any case ({MOST_SEARCH} characters at most)",
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--live", dest="live", action="store_const", const=True, help="only objects in memory"
    )
    state.add_argument(
        "--hibernated",
        dest="live",
        action="store_const",
        const=False,
        help="only objects out of memory (their sockets may still be open)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"list at most N objects (default {DEFAULT_LIMIT})",
    )
    output.add_json_flag(parser)
    options.add_options(parser, options.COMMON)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        raise CommandError(f"--limit must be at least 1, not {args.limit}")
    if args.name is not None:
        if not args.name:
            raise CommandError("--name is empty: give a part of a name or leave it out")
        if len(args.name) > MOST_SEARCH:
            raise CommandError(f"--name is longer than {MOST_SEARCH} characters")
        if "\x00" in args.name:
            raise CommandError("--name holds a NUL character, which no name holds")
    return run_history(settings, lambda history: _list(history, args))


async def _list(history: HistoryService, args: argparse.Namespace) -> int:
    page = await history.objects(
        binding=args.binding, live=args.live, name=args.name, limit=args.limit
    )
    if args.json:
        output.json_lines(json_shapes.object_info(o) for o in page.objects)
    else:
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("class", "name", "id", "events", "last activity", "state", "sockets"):
            table.add_column(column, justify="right" if column in ("events", "sockets") else "left")
        table.add_column("owner node")
        for o in page.objects:
            table.add_row(
                o.binding,
                o.name if o.name is not None else "",
                o.object_id,
                str(o.last_seq),
                output.when(o.last_activity),
                "live" if o.live else "hibernated",
                str(o.open_sockets),
                o.owner_node or "",
            )
        if page.objects:
            output.show(table)
    if not page.objects:
        output.note("no objects" + (f" of binding {args.binding}" if args.binding else ""))
    if page.cursor is not None:
        output.note(f"showing the first {args.limit} objects: --limit N shows more")
    return 0
