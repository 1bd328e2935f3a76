"""The history commands on databases made by hand: not migrated, an ambiguous name, events
of a type this version does not know, and psql missing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from tests.cli.process import child_env, scratch_database
from tests.history_cli.support import run
from tests.store.helpers import object_id


async def test_an_unmigrated_database_is_a_one_line_error(database_url: str) -> None:
    async with scratch_database(database_url, "durable_history_cli_empty") as empty:
        env = child_env(database_url=empty)
        results = await asyncio.gather(
            run("objects", env=env),
            run("events", "CHAT/lobby", env=env),
            run("tail", env=env),
        )
    for result in results:
        assert result.code == 1 and result.stdout == ""
        (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert "durable migrate" in error
        assert "Traceback" not in result.stderr


async def test_an_ambiguous_name_asks_for_the_id(database_url: str) -> None:
    first, second = object_id("one"), object_id("two")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO objects (object_id, binding, name) VALUES ($1, 'CHAT', 'lobby'),"
            " ($2, 'CHAT', 'lobby')",
            first,
            second,
        )
    finally:
        await connection.close()
    env = child_env(database_url=database_url)
    ambiguous, by_id = await asyncio.gather(
        run("state", "CHAT/lobby", env=env), run("state", second, "--json", env=env)
    )
    assert ambiguous.code == 1
    ids = ", ".join(sorted([first, second]))  # created together: in id order
    assert f"error: CHAT/lobby names 2 objects ({ids}): give the id" in ambiguous.stderr
    (state,) = by_id.json_lines()
    assert state["object"]["object_id"] == second and state["seq"] == 0


async def test_an_event_of_an_unknown_type_is_shown_as_stored(database_url: str) -> None:
    """Other versions add event types; a reader that does not know one shows its fields."""
    room = object_id("room")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO objects (object_id, binding, name, last_seq)"
            " VALUES ($1, 'CHAT', 'room', 2)",
            room,
        )
        await connection.execute(
            "INSERT INTO events (object_id, seq, type, version, data) VALUES"
            ' ($1, 1, \'storage_put\', 1, \'{"entries": {"topic": "cats"}}\'),'
            ' ($1, 2, \'room_archived\', 3, \'{"topic": "news", "payload": [1, 2]}\')',
            room,
        )
    finally:
        await connection.close()
    env = child_env(database_url=database_url)
    text, shaped, state = await asyncio.gather(
        run("events", "CHAT/room", env=env),
        run("events", "CHAT/room", "--json", env=env),
        run("state", "CHAT/room", env=env),
    )
    lines = text.stdout.splitlines()
    assert lines[0].endswith('storage_put  put topic = "cats"')
    generic = 'room_archived  room_archived: topic = "news", payload = [1,2]'
    assert lines[1].endswith(generic)
    published = shaped.json_lines()[1]
    assert (published["type"], published["version"]) == ("room_archived", 3)
    assert published["data"] == {"topic": "news", "payload": [1, 2]}
    assert published["sender"] is None and published["socket_id"] is None
    # A replay cannot fold what it does not know: it says so rather than guess.
    assert state.code == 1 and "Traceback" not in state.stderr
    assert "error: CHAT/room cannot be replayed by this version" in state.stderr
    assert "room_archived" in state.stderr


async def test_psql_missing_says_how_to_get_it(database_url: str, tmp_path: Path) -> None:
    env = child_env(database_url=database_url)
    env["PATH"] = str(tmp_path)  # python is run by its full path; psql is nowhere
    result = await run("psql", "-c", "SELECT 1", env=env)
    assert result.code == 1 and result.stdout == ""
    assert "error: psql is not installed" in result.stderr
    assert json.dumps(result.stderr).count("error:") == 1
