"""``durable migrate``: bring the database schema up to date."""

from __future__ import annotations

import argparse

from service.cli import options
from service.cli.database import database, upgrade
from service.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` to the ``durable`` command."""
    migrate = commands.add_parser(
        "migrate",
        help="bring the database schema up to date",
        description="Apply the database migrations (to the embedded server without DATABASE_URL).",
    )
    options.add_options(migrate, options.COMMON)
    migrate.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate the database ``settings`` name (or the embedded one) to the newest revision."""
    from service.store import database_url

    with database(settings) as (url, _):
        upgrade(url)
        print(f"Migrated {database_url.redact(url)} to the newest revision.", flush=True)
    return 0
