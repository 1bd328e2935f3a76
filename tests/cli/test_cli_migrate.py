"""`durable migrate`, and `durable serve` refusing a database that was not migrated."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from alembic.script import ScriptDirectory

from service.store import migrate
from tests.cli.process import ECHO, child_env, durable, run, scratch_database

TABLES = {"events", "snapshots", "objects", "websockets", "alarms", "inbox"}


@pytest.fixture
async def fresh_url(database_url: str) -> AsyncIterator[str]:
    """An empty database on the test server (no tables, no alembic_version)."""
    async with scratch_database(database_url, f"durable_fresh_{uuid.uuid4().hex[:12]}") as url:
        yield url


def _head(url: str) -> str:
    head = ScriptDirectory.from_config(migrate.config(url)).get_current_head()
    assert head is not None
    return head


async def _revision_and_tables(url: str) -> tuple[str | None, set[str]]:
    connection = await asyncpg.connect(url)
    try:
        tables = {
            r[0]
            for r in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
        revision = None
        if "alembic_version" in tables:
            revision = await connection.fetchval("SELECT version_num FROM alembic_version")
        return revision, tables
    finally:
        await connection.close()


async def test_migrate_brings_a_fresh_database_to_head(fresh_url: str) -> None:
    assert await _revision_and_tables(fresh_url) == (None, set())
    result = run("migrate", env=child_env(database_url=fresh_url))
    assert result.returncode == 0, result.stderr
    assert "to the newest revision" in result.stdout
    revision, tables = await _revision_and_tables(fresh_url)
    assert revision == _head(fresh_url)
    assert tables >= TABLES
    again = run("migrate", env=child_env(database_url=fresh_url))  # idempotent
    assert again.returncode == 0, again.stderr
    assert await _revision_and_tables(fresh_url) == (revision, tables)


async def test_migrate_takes_the_database_url_flag(fresh_url: str) -> None:
    result = run("migrate", "--database-url", fresh_url, env=child_env())
    assert result.returncode == 0, result.stderr
    assert (await _revision_and_tables(fresh_url))[0] == _head(fresh_url)


async def test_serve_refuses_an_unmigrated_database(fresh_url: str) -> None:
    result = run("serve", ECHO, "--port", "0", env=child_env(database_url=fresh_url))
    assert result.returncode == 1
    assert "is not migrated" in result.stderr
    assert "run `durable migrate` first, or serve with --auto-migrate" in result.stderr
    assert "Traceback" not in result.stderr
    assert (await _revision_and_tables(fresh_url)) == (None, set())  # left untouched


async def test_serve_refuses_a_database_behind_or_ahead(fresh_url: str) -> None:
    connection = await asyncpg.connect(fresh_url)
    try:
        await connection.execute("CREATE TABLE alembic_version (version_num varchar(32))")
        await connection.execute("INSERT INTO alembic_version VALUES ('0123456789ab')")
    finally:
        await connection.close()
    result = run("serve", ECHO, env=child_env(database_url=fresh_url))
    assert result.returncode == 1
    assert "at revision 0123456789ab, which this version does not know" in result.stderr


#: What Alembic logs whenever it opens a database, which a start of `durable serve` hides.
ALEMBIC_PREAMBLE = ("Context impl PostgresqlImpl.", "Will assume transactional DDL.")


async def test_serve_auto_migrates_when_asked(fresh_url: str) -> None:
    env = child_env({"DURABLE_AUTO_MIGRATE": "1"}, database_url=fresh_url)
    async with durable("serve", ECHO, "--port", "0", env=env) as node:
        url = await node.serving()
        assert "Running upgrade  -> " in node.output  # each migration applied is still said
        for line in ALEMBIC_PREAMBLE:
            assert line not in node.output
        async with aiohttp.ClientSession() as session, session.get(f"{url}/echo/a") as response:
            assert (response.status, await response.text()) == (200, "1")
        assert await node.stop() == 0
    assert (await _revision_and_tables(fresh_url))[0] == _head(fresh_url)


def test_serve_says_when_the_database_cannot_be_reached() -> None:
    env = child_env(database_url="postgresql://nobody@127.0.0.1:1/none")
    result = run("serve", ECHO, env=env, timeout=30)
    assert result.returncode == 1
    assert "error: cannot reach the database postgresql://nobody@127.0.0.1:1/none" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody:secret@127.0.0.1:1/none",
        "postgresql://nobody@127.0.0.1:1/none?password=secret",
    ],
    ids=["userinfo", "query"],
)
def test_migrate_says_when_the_database_cannot_be_reached(url: str) -> None:
    result = run("migrate", env=child_env(database_url=url), timeout=30)
    assert result.returncode == 1
    assert "error: migrating postgresql://nobody@127.0.0.1:1/none failed: " in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stdout + result.stderr


async def test_a_start_on_a_migrated_database_says_nothing_of_alembic(database_url: str) -> None:
    env = child_env({"DURABLE_AUTO_MIGRATE": "1"}, database_url=database_url)
    async with durable("serve", ECHO, "--port", "0", env=env) as node:
        await node.serving()
        assert await node.stop() == 0
    assert "alembic" not in node.output
    for line in ALEMBIC_PREAMBLE:
        assert line not in node.output
