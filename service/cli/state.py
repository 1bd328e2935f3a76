"""``durable state OBJECT``: an object's state at a point (by default now), rebuilt by the one
replay: storage, sockets, auto-response, event timeout, alarm."""

from __future__ import annotations

import argparse

from service.cli import options, output, points
from service.cli.history_access import run_history
from service.history import json_shapes, readable
from service.ports.history import HistoryService, StateAt
from service.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``state`` to the ``durable`` command."""
    parser = commands.add_parser(
        "state",
        help="an object's state now or at a seq or time, rebuilt from its log",
        description="Rebuild an object's state as it was after an event (a seq) or at a time, "
        "by the same replay a wake uses (the newest snapshot at or before the point, then the "
        "events after it): storage with decoded values, sockets with their tags and "
        "attachments, the auto-response, the event timeout and the alarm. Says which snapshot "
        "the replay started from and how many events it folded.",
        epilog="examples: durable state CHAT/lobby; durable state CHAT/lobby --at 120; "
        "durable state CHAT/lobby --at 2026-12-07T18:00:00Z --json",
    )
    parser.add_argument("object", metavar="OBJECT", help="BINDING/NAME or the object's 64-hex id")
    parser.add_argument(
        "--at", metavar="SEQ|TIME", help=points.HELP + "; default: after the last event"
    )
    output.add_json_flag(parser)
    options.add_options(parser, options.COMMON)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    at = None if args.at is None else points.point(args.at, "--at")

    async def show(history: HistoryService) -> int:
        with output.progress("replaying") as progress:
            rebuilt = await history.state(args.object, at=at, progress=progress)
        if args.json:
            output.json_lines([json_shapes.state(rebuilt)])
        else:
            print_state(rebuilt)
        return 0

    return run_history(settings, show)


def print_state(rebuilt: StateAt) -> None:
    """The state as tables: a summary, storage, sockets."""
    from rich.table import Table

    folded, found = rebuilt.state, rebuilt.object
    start = f"snapshot at seq {rebuilt.snapshot_seq}" if rebuilt.snapshot_seq else "seq 0"
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("object", f"{json_shapes.label_of(found)} ({found.object_id})")
    summary.add_row("after seq", f"{rebuilt.seq} of {found.last_seq}")
    summary.add_row("replay", f"from {start}, {rebuilt.folded} events folded")
    auto = folded.auto_response
    summary.add_row("auto-response", "none" if auto is None else f"{auto[0]!r} -> {auto[1]!r}")
    timeout = folded.event_timeout_ms
    summary.add_row("event timeout", "none" if timeout is None else f"{timeout} ms")
    summary.add_row("alarm", readable.milliseconds(folded.alarm_ms))
    summary.add_row("messages", str(folded.messages))

    storage = Table(title=f"storage ({len(folded.storage)} keys)", title_justify="left", box=None)
    storage.add_column("key", overflow="fold")
    storage.add_column("value", overflow="fold")
    for key, encoded in folded.storage.items():
        storage.add_row(key, readable.value(encoded, 400))

    sockets = Table(title=f"sockets ({len(folded.sockets)} open)", title_justify="left", box=None)
    for column in ("socket", "tags", "attachment", "url", "state"):
        sockets.add_column(column, overflow="fold")
    for socket in folded.sockets.values():
        sockets.add_row(
            socket.socket_id,
            ", ".join(socket.tags),
            "" if socket.attachment is None else readable.value(socket.attachment, 200),
            socket.url or "",
            ("hibernatable" if socket.hibernatable else "standard")
            + (", close sent" if socket.close_sent else ""),
        )
    output.show(summary, "", storage, "", sockets)
