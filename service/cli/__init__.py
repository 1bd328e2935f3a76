"""The ``durable`` command: one module per subcommand, each adding itself to the parser.

Every option is a field of ``Settings`` (see ``options``): the flags are generated from the
model, so each one also reads ``DURABLE_<NAME>`` from the environment.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from pydantic import ValidationError

from service.cli import (
    cluster,
    diff,
    events,
    fork,
    logging_setup,
    logs,
    migrate,
    objects,
    options,
    presence,
    psql,
    rerun,
    serve,
    state,
    tail,
)
from service.cli.errors import CommandError
from service.settings import Settings

__all__ = ["CommandError", "main", "parser", "run"]

#: The subcommands, in the order ``durable --help`` lists them.
COMMANDS: tuple[ModuleType, ...] = (
    serve,
    cluster,
    migrate,
    objects,
    events,
    logs,
    state,
    presence,
    diff,
    tail,
    psql,
    fork,
    rerun,
)

Handler = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``durable`` script and of ``python -m service``."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    from service.loader import LoadError
    from service.store.embedded import EmbeddedError

    durable = parser()
    args, extra = durable.parse_known_args(argv)
    if extra:
        if not hasattr(args, "passthrough"):
            durable.error(f"unrecognized arguments: {' '.join(extra)}")
        args.passthrough = extra
    try:
        settings = Settings(**options.flags(args))
    except ValidationError as error:
        print(options.explain(error), file=sys.stderr)
        return 2
    logging_setup.configure(settings.log_level, settings.object_log_level)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except (LoadError, EmbeddedError, FileNotFoundError, CommandError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def parser() -> argparse.ArgumentParser:
    """The ``durable`` command's parser, with every subcommand."""
    durable = argparse.ArgumentParser(
        prog="durable",
        description="Durable objects with WebSocket hibernation, event-sourced on PostgreSQL.",
        epilog="Every option falls back to DURABLE_<NAME> in the environment; "
        "DATABASE_URL selects the database (unset: an embedded PostgreSQL in --data-dir).",
    )
    durable.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {importlib.metadata.version('durable-objects')}",
        help="print the installed version and exit",
    )
    commands = durable.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return durable
