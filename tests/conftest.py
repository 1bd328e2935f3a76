"""Test fixtures: a real PostgreSQL (DATABASE_URL, or an embedded server started here).

pytest-postgresql migrates a template database once per session (``alembic upgrade head``)
and clones it for every test, so each test gets a fresh, fully migrated database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import pytest
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from service.store import migrate
from tests.store.helpers import Stores

# Tests describe their settings explicitly; the developer's environment must not leak in.
for _name in [n for n in os.environ if n.startswith("DURABLE_")]:
    del os.environ[_name]


def _server_from_url(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    return {
        "host": unquote(host),
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password) if parts.password else None,
    }


@pytest.fixture(scope="session")
def postgresql_server_url() -> Iterator[str]:
    """The session's server: DATABASE_URL, or an embedded server, removed afterwards.

    The embedded server's data goes in a directory of its own, not pytest's
    tmp_path_factory: as root, the wheel opens every directory above the data to the
    server's own user, which pytest's private directory must not be.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from service.store import embedded

    directory = Path(tempfile.mkdtemp(prefix="durable-tests-"))
    try:
        url, handle = embedded.start(directory / "pg")
        try:
            yield url
        finally:
            embedded.stop(handle)
    finally:
        shutil.rmtree(directory)


@pytest.fixture(scope="session")
def postgresql_template(postgresql_server_url: str) -> Iterator[NoopExecutor]:
    """The session's server, with a migrated template database that tests clone."""
    server = _server_from_url(postgresql_server_url)
    executor = NoopExecutor(
        host=str(server["host"]),
        port=int(server["port"]),  # type: ignore[call-overload]
        user=str(server["user"]),
        password=server["password"],  # type: ignore[arg-type]
        options="",
        dbname=f"durable_test_{os.getpid()}",
    )
    janitor = DatabaseJanitor(
        user=executor.user,
        host=executor.host,
        port=executor.port,
        dbname=executor.template_dbname,
        as_template=True,
        password=executor.password,
    )
    with janitor:
        janitor.load(_migrate_template)
        yield executor


def _url(host: str, port: int, user: str, dbname: str, password: str | None = None) -> str:
    auth = f"{user}:{password}" if password else user
    if host.startswith("/"):
        return f"postgresql://{auth}@/{dbname}?host={host}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{dbname}"


def _migrate_template(
    host: str, port: int, user: str, dbname: str, password: str | None, **_: object
) -> None:
    migrate.upgrade(_url(host, port, user, dbname, password))


postgresql = factories.postgresql("postgresql_template")


@pytest.fixture
def database_url(postgresql: object) -> str:
    """URL of a fresh, migrated database for this test."""
    info = postgresql.info  # type: ignore[attr-defined]
    return _url(info.host, info.port, info.user, info.dbname, info.password)


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    """Event stores opened on this test's database, as nodes open them; closed afterwards."""
    opened = Stores(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, to write and look at the tables as any other client would."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()
