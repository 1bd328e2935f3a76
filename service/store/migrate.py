"""Applying migrations from code: `durable migrate`, the embedded default and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

#: The migrations folder sits at the top of the project, beside the package.
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def config(url: str) -> Config:
    """An Alembic config for ``url``, independent of the working directory."""
    if not MIGRATIONS.is_dir():
        raise FileNotFoundError(
            f"no migrations at {MIGRATIONS}: install the project from its source tree "
            "(pip install -e .), where migrations/ sits beside service/"
        )
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``. Runs its own event loop."""
    command.upgrade(config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(config(url), revision)


def check(url: str) -> str | None:
    """None if the database is at the newest revision, else what is wrong and what to do."""
    import asyncio

    import asyncpg
    from alembic.script import ScriptDirectory

    from service.store import database_url

    scripts = ScriptDirectory.from_config(config(url))
    head = scripts.get_current_head()

    async def current() -> str | None:
        connection = await asyncpg.connect(database_url.for_asyncpg(url), timeout=10)
        try:
            exists = await connection.fetchval("SELECT to_regclass('alembic_version')")
            if exists is None:
                return None
            version = await connection.fetchval("SELECT version_num FROM alembic_version")
            return str(version) if version is not None else None
        finally:
            await connection.close()

    try:
        revision = asyncio.run(current())
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        return f"cannot reach the database {database_url.redact(url)}: {error}"
    if revision == head:
        return None
    if revision is None:
        return (
            f"the database {database_url.redact(url)} is not migrated (this version needs "
            f"revision {head}): run `durable migrate` first, or serve with --auto-migrate"
        )
    if revision not in {script.revision for script in scripts.walk_revisions()}:
        return (
            f"the database is at revision {revision}, which this version does not know "
            "(was it migrated by a newer version?)"
        )
    return (
        f"the database is at revision {revision}, this version needs {head}: "
        "run `durable migrate` first, or serve with --auto-migrate"
    )
