"""``durable psql``: psql on the database the other commands use, the embedded one included."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess

from service.cli import options
from service.cli.database import database
from service.cli.errors import CommandError
from service.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``psql`` to the ``durable`` command."""
    parser = commands.add_parser(
        "psql",
        usage="durable psql [--database-url URL] [--data-dir DIR] [PSQL ARGUMENTS ...]",
        allow_abbrev=False,
        help="open psql on the service's database",
        description="Run PostgreSQL's psql on the database the service uses: DATABASE_URL, or "
        "the embedded server of --data-dir (started for the session when no node runs it). "
        "Arguments after the options go to psql.",
        epilog="examples: durable psql; durable psql -c 'SELECT * FROM presence'",
    )
    options.add_options(parser, options.COMMON)
    # What the parser does not know goes to psql (``durable.run`` hands it over).
    parser.set_defaults(handler=run, passthrough=[])


def run(args: argparse.Namespace, settings: Settings) -> int:
    from service.store import database_url

    program = shutil.which("psql")
    if program is None:
        raise CommandError(
            "psql is not installed (PostgreSQL's client: e.g. apt-get install postgresql-client)"
        )
    extra = list(args.passthrough)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    with database(settings, announce=False) as (url, embedded):
        argv = [program, database_url.for_asyncpg(url), *extra]
        if not embedded:
            os.execv(program, argv)  # psql takes the terminal, the signals and the exit code
        # The embedded server stops when this process lets go of it: psql runs as a child,
        # and Ctrl-C is psql's (it cancels a query), not ours.
        child = subprocess.Popen(argv)  # started first: it keeps the default SIGINT
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
