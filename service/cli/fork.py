"""``durable fork OBJECT --at SEQ|TIME --as NAME``: a new object from another's past state."""

from __future__ import annotations

import argparse
import getpass
import json
import socket
from typing import TYPE_CHECKING

from service.cli import options, points
from service.cli.errors import CommandError
from service.history import json_shapes
from service.settings import Settings

if TYPE_CHECKING:
    from service.api.application import Application
    from service.ports.history import Forked, HistoryService


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fork`` to the ``durable`` command."""
    fork = commands.add_parser(
        "fork",
        help="make a new object from another's state at one of its events",
        description="Make the object NAME, of the same binding as OBJECT, whose log begins with "
        "one object_forked event: where it came from, who made it, and OBJECT's storage, "
        "auto-response, event timeout and alarm as they were after event SEQ (or at TIME). "
        "Its clients reach it by name like any other object; OBJECT is not changed.",
    )
    fork.add_argument("object", metavar="OBJECT", help="BINDING/NAME or the 64-hex id to fork")
    fork.add_argument(
        "--at",
        required=True,
        metavar="SEQ|TIME",
        help="the state to copy: " + points.HELP,
    )
    fork.add_argument(
        "--as",
        dest="as_name",
        required=True,
        metavar="NAME",
        help="the fork's name: its id is id_from_name(NAME) in OBJECT's namespace",
    )
    fork.add_argument(
        "--app",
        metavar="APP",
        help="the application (as for serve), for the unique key of the namespace when it "
        "overrides the binding's name",
    )
    fork.add_argument("--json", action="store_true", help="print the result as a JSON object")
    options.add_options(fork, options.COMMON)
    fork.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Fork the object and print what was made."""
    from service.cli.history_access import run_history
    from service.loader import load_application

    args.at = points.point(args.at, "--at")
    application = load_application(args.app) if args.app else None

    async def work(history: HistoryService) -> int:
        _show(await _fork(history, args, application), as_json=args.json)
        return 0

    return run_history(settings, work)


def _show(forked: Forked, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(json_shapes.forked(forked), ensure_ascii=False))
        return
    source = forked.source
    named = f"{source.binding}/{source.name}" if source.name is not None else source.object_id
    alarm = "no alarm" if forked.alarm_ms is None else f"its alarm at {forked.alarm_ms} ms"
    print(
        f"Forked {named} at seq {forked.seq} as {forked.binding}/{forked.name} "
        f"(id {forked.object_id}): {forked.keys} storage key{'' if forked.keys == 1 else 's'} "
        f"and {alarm} copied."
    )


async def _fork(
    history: HistoryService, args: argparse.Namespace, application: Application | None
) -> Forked:
    from service.ports.errors import StoreError

    try:
        unique_key = None
        if application is not None:
            binding = (await history.find(args.object)).binding
            if binding not in application.unique_keys:
                raise CommandError(f"{args.app} has no binding {binding}")
            unique_key = application.unique_keys[binding]
        return await history.fork(
            args.object,
            at=args.at,
            as_name=args.as_name,
            unique_key=unique_key,
            by=_operator(),
        )
    except (StoreError, ValueError) as error:
        raise CommandError(str(error)) from error


def _operator() -> str:
    """Who runs the command, as ``user@host``: recorded in the event it writes."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
