"""``durable diff OBJECT A B``: what changed in an object's state between two points."""

from __future__ import annotations

import argparse

from service.cli import options, output, points
from service.cli.history_access import run_history
from service.events.fold import SocketState
from service.history import json_shapes, readable
from service.ports.history import DiffBetween, HistoryService
from service.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``diff`` to the ``durable`` command."""
    parser = commands.add_parser(
        "diff",
        help="what changed in an object's state between two points",
        description="Rebuild an object's state at two points (each a seq or a time) and show "
        "what changed from A to B: storage keys added, removed and changed (old and new "
        "values), sockets opened and closed, tags and attachments changed, auto-response, "
        "event timeout, alarm and the count of messages received.",
        epilog="examples: durable diff CHAT/lobby 10 42; "
        "durable diff CHAT/lobby 2026-12-07T18:00:00Z now --json",
    )
    parser.add_argument("object", metavar="OBJECT", help="BINDING/NAME or the object's 64-hex id")
    parser.add_argument("first", metavar="A", help="from this point: " + points.HELP)
    parser.add_argument("second", metavar="B", help="to this point (SEQ or TIME, as A)")
    output.add_json_flag(parser)
    options.add_options(parser, options.COMMON)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    first = points.point(args.first, "A")
    second = points.point(args.second, "B")

    async def show(history: HistoryService) -> int:
        with output.progress("replaying") as progress:
            between = await history.diff(args.object, first, second, progress=progress)
        if args.json:
            output.json_lines([json_shapes.diff(between)])
        else:
            print_diff(between)
        return 0

    return run_history(settings, show)


def _socket(socket: SocketState) -> str:
    attachment = "" if socket.attachment is None else f" {readable.value(socket.attachment, 80)}"
    return f"[{', '.join(socket.tags)}]{attachment}"


def print_diff(between: DiffBetween) -> None:
    """The changes as one table: what, which, before, after."""
    from rich.table import Table

    changes = between.diff
    title = (
        f"{json_shapes.label_of(between.object)}: "
        f"from seq {between.from_seq} to seq {between.to_seq}"
    )
    if changes.empty:
        output.lines([f"{title}: no change"])
        return
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    for column in ("change", "of", "before", "after"):
        table.add_column(column, overflow="fold")
    for key in changes.storage:
        table.add_row(
            f"key {key.change}",
            key.key,
            "" if key.change == "added" else readable.value(key.old, 200),
            "" if key.change == "removed" else readable.value(key.new, 200),
        )
    for socket in changes.sockets_opened:
        table.add_row("socket opened", socket.socket_id, "", _socket(socket))
    for socket in changes.sockets_closed:
        table.add_row("socket closed", socket.socket_id, _socket(socket), "")
    for changed in changes.sockets_changed:
        table.add_row(
            "socket changed", changed.socket_id, _socket(changed.before), _socket(changed.after)
        )
    for field in changes.fields:
        old, new = field.old, field.new
        if field.name == "alarm_ms":
            old, new = readable.milliseconds(old), readable.milliseconds(new)
        table.add_row(field.name, "", "none" if old is None else str(old), str(new))
    output.show(table)
