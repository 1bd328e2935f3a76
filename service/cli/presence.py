"""``durable presence``: who is connected now, or was at a time, from the presence table."""

from __future__ import annotations

import argparse

from service.cli import options, output, points
from service.cli.errors import CommandError
from service.cli.history_access import run_history
from service.history import json_shapes, readable
from service.ports.history import HistoryService
from service.settings import Settings

#: Sockets listed when --limit is not given.
DEFAULT_LIMIT = 1000


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``presence`` to the ``durable`` command."""
    parser = commands.add_parser(
        "presence",
        help="who is connected now, or was at a time",
        description="List the sockets open now (or at --at TIME: connected then and not yet "
        "closed), oldest connection first: their object, tags, attachment (the user), when "
        "they connected, their last activity and the node holding them. Attachment and last "
        "activity are the socket's latest, even with --at.",
        epilog="examples: durable presence --object CHAT/lobby; durable presence --tag "
        "user:ada; durable presence --at 2026-12-07T18:00:00Z --json",
    )
    parser.add_argument("--tag", metavar="T", help="only sockets with this tag (e.g. user:ada)")
    parser.add_argument(
        "--object", metavar="OBJECT", help="only sockets of this object (BINDING/NAME or id)"
    )
    parser.add_argument(
        "--at", metavar="TIME", help="as at this ISO 8601 time with its zone (default: now)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"list at most N sockets (default {DEFAULT_LIMIT})",
    )
    output.add_json_flag(parser)
    options.add_options(parser, options.COMMON)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    at = None if args.at is None else points.time(args.at, "--at")
    if args.limit < 1:
        raise CommandError(f"--limit must be at least 1, not {args.limit}")

    async def show(history: HistoryService) -> int:
        rows = await history.presence(tag=args.tag, ref=args.object, at=at, limit=args.limit + 1)
        more = len(rows) > args.limit
        rows = rows[: args.limit]
        if args.json:
            output.json_lines(json_shapes.socket(row) for row in rows)
        else:
            from rich.table import Table

            table = Table(box=None, header_style="bold", pad_edge=False)
            columns = ["object", "socket", "user", "tags", "attachment", "connected since"]
            columns += ["last activity", "node"] + (["closed at"] if at is not None else [])
            for column in columns:
                table.add_column(column, overflow="fold")
            for row in rows:
                cells = [
                    json_shapes.label(row.binding, row.name, row.object_id),
                    row.socket_id,
                    readable.sender_name(row.attachment, row.tags) or "",
                    ", ".join(row.tags),
                    "" if row.attachment is None else readable.value(row.attachment, 120),
                    output.when(row.connected_at),
                    output.when(row.last_activity_at),
                    row.node or "",
                ]
                if at is not None:
                    cells.append(output.when(row.closed_at) or "open")
                table.add_row(*cells)
            if rows:
                output.show(table)
        if not rows:
            output.note("nobody was connected then" if at is not None else "nobody is connected")
        if more:
            output.note(f"showing the first {args.limit} sockets: --limit N shows more")
        return 0

    return run_history(settings, show)
