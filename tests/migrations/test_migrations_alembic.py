"""Migrations: one head, a clean round trip, and a migrated database that matches the schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from service.store import database_url as urls
from service.store import migrate, schema

TABLES = sorted(schema.metadata.tables)
#: The views migrations create (they are not in the metadata).
VIEWS = ["live_nodes", "object_history", "presence"]


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def empty_database_url(database_url: str) -> Iterator[str]:
    """A new database with nothing in it, on the server of ``database_url``; dropped after."""
    name = f"durable_migrations_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(database_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(database_url, name)
    finally:
        asyncio.run(_admin(database_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def _fetch_sync(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(url, query, *args))


def _relations(url: str) -> dict[str, str]:
    """Tables and views of the public schema, name to kind."""
    rows = _fetch_sync(
        url,
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'public'",
    )
    return {r["table_name"]: r["table_type"] for r in rows}


def _differences(url: str) -> list[Any]:
    """What autogenerate would change to make the database match ``schema.metadata``."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, schema.metadata))

    async def run() -> list[Any]:
        engine = create_async_engine(urls.for_sqlalchemy(url))
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _head() -> str:
    heads = ScriptDirectory.from_config(migrate.config("postgresql://unused/none")).get_heads()
    assert len(heads) == 1
    return heads[0]


def test_there_is_a_single_head() -> None:
    script = ScriptDirectory.from_config(migrate.config("postgresql://unused/none"))
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1
    # The service knows its newest revision without reading the scripts (a fast start).
    assert script.get_current_head() == migrate.HEAD
    # Every revision is reachable from the head: no branch was left dangling.
    assert len(list(script.walk_revisions())) == len(
        list(script.revision_map.iterate_revisions(script.get_current_head(), "base"))
    )


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database_url: str) -> None:
    url = empty_database_url
    assert _relations(url) == {}

    migrate.upgrade(url)
    relations = _relations(url)
    assert {name for name, kind in relations.items() if kind == "BASE TABLE"} == {
        *TABLES,
        "alembic_version",
    }
    assert sorted(name for name, kind in relations.items() if kind == "VIEW") == VIEWS
    assert migrate.check(url) is None

    migrate.downgrade(url)
    assert _relations(url) == {"alembic_version": "BASE TABLE"}
    assert _fetch_sync(url, "SELECT * FROM alembic_version") == []
    assert migrate.check(url) is not None

    migrate.upgrade(url)
    assert _relations(url) == relations
    assert _differences(url) == []
    version = _fetch_sync(url, "SELECT version_num FROM alembic_version")
    assert [r["version_num"] for r in version] == [_head()]


def test_each_revision_steps_down_and_up_again(empty_database_url: str) -> None:
    url = empty_database_url
    script = ScriptDirectory.from_config(migrate.config(url))
    revisions = [r.revision for r in script.walk_revisions("base", "heads")][::-1]
    for revision in revisions:
        migrate.upgrade(url, revision)
        before = _relations(url)
        migrate.downgrade(url, "-1")
        migrate.upgrade(url, revision)
        assert _relations(url) == before
    assert _differences(url) == []


def test_the_test_database_is_at_head_and_matches_the_schema(database_url: str) -> None:
    assert migrate.check(database_url) is None
    assert _differences(database_url) == []


def test_tables_and_columns_carry_their_comments_in_the_database(database_url: str) -> None:
    for table in schema.metadata.tables.values():
        assert table.comment, f"table {table.name} has no comment in schema.py"
        stored = _fetch_sync(
            database_url, "SELECT obj_description($1::regclass, 'pg_class') AS c", table.name
        )
        assert stored[0]["c"] == table.comment, table.name
        columns = {
            r["name"]: r["c"]
            for r in _fetch_sync(
                database_url,
                "SELECT attname AS name, col_description(attrelid, attnum) AS c "
                "FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
                "AND NOT attisdropped",
                table.name,
            )
        }
        assert set(columns) == {c.name for c in table.columns}
        for column in table.columns:
            assert columns[column.name] == column.comment, f"{table.name}.{column.name}"
    for view in VIEWS:
        described = _fetch_sync(
            database_url,
            "SELECT obj_description($1::regclass, 'pg_class') AS c, "
            "array_agg(attname) FILTER (WHERE col_description(attrelid, attnum) IS NULL) AS bare"
            " FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 GROUP BY 1",
            view,
        )
        assert described[0]["c"], f"view {view} has no comment"
        assert described[0]["bare"] is None, f"columns of {view} without a comment"


def test_the_presence_view_lists_open_sockets_with_their_object(database_url: str) -> None:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(
                "INSERT INTO objects (object_id, binding, name) VALUES ('o', 'CHAT', 'lobby')"
            )
            await connection.execute(
                "INSERT INTO websockets (object_id, socket_id, tags, closed_at) VALUES "
                "('o', 'open', '{a,b}', NULL), ('o', 'gone', '{a}', now())"
            )
            return list(await connection.fetch("SELECT * FROM presence"))
        finally:
            await connection.close()

    rows = asyncio.run(run())
    assert [(r["object_id"], r["binding"], r["name"], r["socket_id"]) for r in rows] == [
        ("o", "CHAT", "lobby", "open")
    ]
    assert rows[0]["tags"] == ["a", "b"]


def test_offline_sql_builds_the_same_schema(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `alembic upgrade head --sql` is what a DBA reviews and applies by hand.
    command.upgrade(migrate.config(empty_database_url), "head", sql=True)
    script = capsys.readouterr().out
    assert "CREATE TABLE events" in script and "COMMENT ON" in script
    asyncio.run(_admin(empty_database_url, script))
    assert migrate.check(empty_database_url) is None
    assert _relations(empty_database_url)["presence"] == "VIEW"
    assert _differences(empty_database_url) == []


#: A ``frames`` outbox row of two rows, and a row of the previous kind after it.
FRAMES_ROWS = """
INSERT INTO outbox (node, object_id, socket_id, kind, text, frames)
VALUES ('n1', 'o', '', 'frames', NULL,
        ARRAY[ROW(NULL, 'o', 's1', 'text', 'one', NULL, NULL, NULL, NULL, NULL),
              ROW(NULL, 'o', 's2', 'close', NULL, NULL, 4000, 'bye', NULL, NULL)
             ]::durable_outbox_v2[]),
       ('n2', 'o', 's3', 'text', 'two', NULL)
"""


def test_stepping_down_from_rows_of_many_frames_keeps_each_frame_in_order(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    migrate.upgrade(url, "b3d5f7a9c1e2")
    _fetch_sync(url, FRAMES_ROWS)
    migrate.downgrade(url, "d7a9c3e5f1b2")
    rows = _fetch_sync(
        url, "SELECT node, socket_id, kind, text, close_code FROM outbox ORDER BY position"
    )
    assert [tuple(r) for r in rows] == [
        ("n2", "s3", "text", "two", None),
        ("n1", "s1", "text", "one", None),
        ("n1", "s2", "close", None, 4000),
    ]
