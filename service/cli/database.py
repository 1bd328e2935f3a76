"""The database a command works on: ``DATABASE_URL``, or the embedded server in ``--data-dir``.

Every command reads the database ``durable serve`` uses: with ``DATABASE_URL`` unset that is
the embedded server of the data directory, started for the command when no node runs it
(processes that share a data directory share its server).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from service.cli.errors import CommandError
from service.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def database(settings: Settings, *, announce: bool = True) -> Iterator[tuple[str, bool]]:
    """The database URL (and whether it is embedded), starting the embedded server if unset.

    Where the database is goes to stdout with ``announce``; commands whose stdout is data
    (a table, JSON lines) say it on stderr instead.
    """
    from service.store import database_url, embedded

    out = sys.stdout if announce else sys.stderr
    if settings.database_url:
        print(f"Database: {database_url.redact(settings.database_url)}", file=out, flush=True)
        yield settings.database_url, False
        return
    data = (settings.data_dir / "pg").expanduser().resolve()
    url, handle = embedded.start(data)
    try:
        print(f"Embedded PostgreSQL: data in {data}", file=out, flush=True)
        print(f"  connect with: psql '{url}'", file=out, flush=True)
        yield url, True
    finally:
        embedded.stop(handle)


def upgrade(url: str) -> None:
    """Migrate the database at ``url`` to the newest revision."""
    from service.store import database_url, migrate

    try:
        migrate.upgrade(url)
    except Exception as error:
        log.debug("migration failed", exc_info=True)
        raise CommandError(
            f"migrating {database_url.redact(url)} failed: {type(error).__name__}: {error}"
        ) from error


def require_migrated(url: str) -> None:
    """Stop with a clear error when the database at ``url`` is not at the newest revision."""
    from service.store import migrate

    problem = migrate.check(url)
    if problem:
        raise CommandError(problem)


def bring_up_to_date(url: str, *, embedded: bool, auto_migrate: bool) -> None:
    """What a command that runs nodes does with their database: migrate it when this command
    started it (embedded) or was asked to (``auto_migrate``), else stop with a clear error
    unless it is already at the newest revision."""
    if embedded or auto_migrate:
        upgrade(url)
    else:
        require_migrated(url)
