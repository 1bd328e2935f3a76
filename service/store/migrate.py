"""Applying migrations from code: `durable migrate`, the embedded default and the tests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest revision of the scripts (tests/migrations checks it against them): a command
#: whose database is at it starts without importing Alembic, which costs most of a second.
HEAD = "e5b7d9f1a3c6"

#: The migration scripts, shipped inside the package (a wheel's or an editable install's):
#: pyproject.toml maps this package onto the project's top-level migrations/ folder.
PACKAGE = "service.store.migrations"


def location() -> Path:
    """The folder of the installed migration scripts, found through the package."""
    try:
        folder = resources.files(PACKAGE)
    except ModuleNotFoundError as error:
        # e.g. an editable install made before the migrations went into the package
        raise FileNotFoundError(
            f"no migrations: {PACKAGE} is not installed; reinstall the project "
            "(pip install ., or pip install -e . in a clone)"
        ) from error
    # Alembic reads scripts from a folder; an installed package is one (not a zip file).
    if not isinstance(folder, Path) or not (folder / "env.py").is_file():
        raise FileNotFoundError(f"no migrations at {folder}: reinstall the project (pip install .)")
    return folder


def config(url: str) -> Config:
    """An Alembic config for ``url``, independent of the working directory."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(location()))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``. Runs its own event loop."""
    from alembic import command

    command.upgrade(config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(config(url), revision)


def check(url: str) -> str | None:
    """None if the database is at the newest revision, else what is wrong and what to do."""
    import asyncio

    import asyncpg

    from service.store import database_url

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
    if revision == HEAD:
        return None
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(config(url))
    head = scripts.get_current_head()
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
