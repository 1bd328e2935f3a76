"""The README's SQL examples answer what their text says, on data the examples made.

The chat and game examples run as real `durable serve` processes (two nodes on one
database) and real WebSocket clients join, chat, play, fall silent and leave; then each
README query, read from README.md and run by psql as a person would paste it, must give
exactly the rows the story implies.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from pytest_postgresql.executors.noop import NoopExecutor

from tests import sql_examples
from tests.cli.process import child_env, durable
from tests.examples.support import EXAMPLES, receive

#: The tests share the module's story, so its event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

EMPTY = [""] * 9

#: The README queries this module checks: every one of them.
CHECKED = {
    "online-in-room",
    "user-everywhere",
    "sockets-per-object",
    "idle",
    "room-frames",
    "room-messages",
    "player-actions",
    "in-room-at",
}


@dataclass
class Story:
    """The database the examples wrote, and the times the queries are asked about."""

    database_url: str
    #: Between ada's and bob's arrival in the lobby; while carol was there; when she left.
    before_bob: datetime
    with_carol: datetime
    carol_left: datetime
    #: Between everyone's last frame and bob's last one, seconds before the story ended.
    quiet_since: datetime


async def _until(
    ws: aiohttp.ClientWebSocketResponse, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The next frame that ``wanted`` accepts, skipping the others."""
    while not wanted(frame := await receive(ws)):
        pass
    return frame


def _message(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["type"] == "message" and frame["text"] == text


def _error(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["type"] == "error" and frame["message"].startswith(text)


def _state(check: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["type"] == "state" and check(frame)


async def _send(ws: aiohttp.ClientWebSocketResponse, **payload: Any) -> None:
    await ws.send_str(json.dumps(payload))


async def _chat(
    session: aiohttp.ClientSession, url: str
) -> dict[str, aiohttp.ClientWebSocketResponse]:
    """ada, bob and carol in the lobby (ada in the den too); they talk; carol leaves."""
    sockets = {}
    for key, room, name in (
        ("ada", "lobby", "ada"),
        ("bob", "lobby", "bob"),
        ("carol", "lobby", "carol"),
        ("ada-den", "den", "ada"),
    ):
        sockets[key] = ws = await session.ws_connect(f"{url}/chat/{room}?username={name}")
        await _until(ws, lambda f, name=name: f["type"] == "join" and f["username"] == name)
    ada, bob, carol = sockets["ada"], sockets["bob"], sockets["carol"]
    await _send(ada, type="message", text="hello bob")
    await _until(bob, _message("hello bob"))
    await _send(bob, type="message", content="hi ada")  # the other common shape
    await _until(ada, _message("hi ada"))
    await _send(carol, type="message", text="bye all")
    await _until(ada, _message("bye all"))
    await ada.send_str("not json")  # refused by the room, recorded all the same
    await _until(ada, _error("Send"))
    await bob.send_bytes(b"\x00\xffbinary")
    await _until(bob, _error("Send"))
    await ada.send_str("nul\x00inside")  # text PostgreSQL cannot hold as it is
    await _until(ada, _error("Send"))
    await carol.close()
    await _until(ada, lambda f: f["type"] == "leave" and f["username"] == "carol")
    await _send(sockets["ada-den"], type="message", text="in another room")
    await _until(sockets["ada-den"], _message("in another room"))
    del sockets["carol"]
    return sockets


async def _game(
    session: aiohttp.ClientSession, url: str
) -> dict[str, aiohttp.ClientWebSocketResponse]:
    """ada (X) and bob (O) play match-1; ada wins, sam watches and leaves, ada asks a rematch."""

    async def join(player: str, role: str) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(f"{url}/game/match-1?playerId={player}")
        await _until(ws, _state(lambda f: f["you"]["role"] == role))
        return ws

    def moves(count: int) -> Callable[[dict[str, Any]], bool]:
        return _state(lambda f: len(f["moves"]) == count)

    ada = await join("ada", "X")
    await _send(ada, type="move", cell=4)
    await _until(ada, _error("Waiting for a second player"))
    bob = await join("bob", "O")
    await _send(ada, type="move", cell=4)
    await _until(ada, moves(1))
    await _send(ada, type="move", cell=0)
    await _until(ada, _error("Not your turn"))
    for ws, cell, count in ((bob, 0, 2), (ada, 1, 3), (bob, 3, 4)):
        await _send(ws, type="move", cell=cell)
        await _until(ws, moves(count))
    await _send(ada, type="move", cell=7)
    await _until(ada, _state(lambda f: f["winner"] == "X"))
    sam = await join("sam", "spectator")
    await _send(ada, type="reset")
    await _until(ada, _state(lambda f: f["round"] == 2))
    await sam.close()
    await _until(ada, _state(lambda f: f["online"] == ["ada", "bob"]))
    return {"ada": ada, "bob": bob}


async def _lobby_times(database_url: str) -> dict[str, asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT w.attachment->>'username' AS username, w.connected_at, w.closed_at"
            "  FROM websockets AS w JOIN objects AS o USING (object_id)"
            " WHERE o.binding = 'CHAT' AND o.name = 'lobby'"
        )
        return {row["username"]: row for row in rows}
    finally:
        await connection.close()


async def _database_now(database_url: str) -> datetime:
    connection = await asyncpg.connect(database_url)
    try:
        now: datetime = await connection.fetchval("SELECT clock_timestamp()")
        return now
    finally:
        await connection.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def story(
    postgresql_server_url: str, postgresql_template: NoopExecutor
) -> AsyncIterator[Story]:
    name = f"durable_sql_examples_{uuid.uuid4().hex[:12]}"
    async with sql_examples.database_from_template(
        postgresql_server_url, postgresql_template.template_dbname, name
    ) as url:
        env = child_env(database_url=url)
        chat_args = ("serve", str(EXAMPLES / "chat"), "--port", "0", "--node-id", "chat-node")
        game_args = ("serve", str(EXAMPLES / "game"), "--port", "0", "--node-id", "game-node")
        async with (
            durable(*chat_args, env=env) as chat,
            durable(*game_args, env=env) as game,
            aiohttp.ClientSession() as session,
        ):
            chat_url, game_url = await chat.serving(), await game.serving()
            sockets = await _chat(session, chat_url)
            players = await _game(session, game_url)
            # Everyone falls silent; seconds later bob speaks again.
            await asyncio.sleep(0.5)
            quiet_since = await _database_now(url)
            await asyncio.sleep(2.0)
            await _send(sockets["bob"], type="message", text="still here")
            await _until(sockets["bob"], _message("still here"))

            lobby = await _lobby_times(url)
            ada, bob, carol = lobby["ada"], lobby["bob"], lobby["carol"]
            yield Story(
                database_url=url,
                before_bob=ada["connected_at"] + (bob["connected_at"] - ada["connected_at"]) / 2,
                with_carol=carol["connected_at"] + (carol["closed_at"] - carol["connected_at"]) / 2,
                carol_left=carol["closed_at"],
                quiet_since=quiet_since,
            )
            for ws in (*sockets.values(), *players.values()):
                await ws.close()
            for node in (chat, game):
                assert await node.stop() == 0


async def _rows(story: Story, name: str, **values: str) -> list[dict[str, str | None]]:
    example = sql_examples.examples()[name]
    return await sql_examples.rows(story.database_url, example, values)


def test_every_readme_query_is_checked_here() -> None:
    assert set(sql_examples.examples()) == CHECKED


@in_module_loop
async def test_each_block_runs_as_pasted(story: Story) -> None:
    """psql, given a block as it is written, answers as the tests' own runs do."""
    for example in sql_examples.examples().values():
        pasted = await sql_examples.rows(story.database_url, example)
        assert pasted == await sql_examples.rows(story.database_url, example, example.defaults)


@in_module_loop
async def test_online_in_room_lists_who_is_connected_now(story: Story) -> None:
    rows = await _rows(story, "online-in-room", room="lobby")
    assert [row["username"] for row in rows] == ["ada", "bob"]  # carol left
    assert [row["username"] for row in await _rows(story, "online-in-room", room="den")] == ["ada"]


@in_module_loop
async def test_user_everywhere_finds_every_room_of_a_user(story: Story) -> None:
    rows = await _rows(story, "user-everywhere", user="ada")
    # Her game socket is tagged player:ada, not user:ada.
    assert [(row["binding"], row["room"]) for row in rows] == [("CHAT", "den"), ("CHAT", "lobby")]
    assert await _rows(story, "user-everywhere", user="carol") == []


@in_module_loop
async def test_sockets_per_object_counts_open_sockets(story: Story) -> None:
    rows = await _rows(story, "sockets-per-object")
    assert [(row["binding"], row["name"], row["sockets"]) for row in rows] == [
        ("CHAT", "lobby", "2"),
        ("GAME", "match-1", "2"),  # sam watched, then left
        ("CHAT", "den", "1"),
    ]


@in_module_loop
async def test_idle_lists_the_silent_for_the_interval_given(story: Story) -> None:
    assert await _rows(story, "idle", idle="5 minutes") == []
    # An interval that reaches back to when everyone had fallen silent, bob aside.
    silent_for = (await _database_now(story.database_url)) - story.quiet_since
    rows = await _rows(story, "idle", idle=f"{silent_for.total_seconds()} seconds")
    # jsonb prints an attachment as json.dumps does.
    idle = sorted((row["binding"], row["name"], row["attachment"]) for row in rows)
    assert idle == [
        ("CHAT", "den", json.dumps({"username": "ada"})),
        ("CHAT", "lobby", json.dumps({"username": "ada"})),
        ("GAME", "match-1", json.dumps({"playerId": "ada"})),
        ("GAME", "match-1", json.dumps({"playerId": "bob"})),
    ]
    times = [datetime.fromisoformat(str(row["last_activity_at"])) for row in rows]
    assert times == sorted(times) and all(time < story.quiet_since for time in times)


@in_module_loop
async def test_room_frames_shows_each_frame_as_sent_with_its_sender(story: Story) -> None:
    rows = await _rows(story, "room-frames", room="lobby")
    assert [(row["sender"], row["text"]) for row in rows] == [
        ("ada", json.dumps({"type": "message", "text": "hello bob"})),
        ("bob", json.dumps({"type": "message", "content": "hi ada"})),
        ("carol", json.dumps({"type": "message", "text": "bye all"})),  # gone, still named
        ("ada", "not json"),
        ("bob", None),  # a binary frame: its base64 is in data
        ("ada", "nul\ufffdinside"),
        ("bob", json.dumps({"type": "message", "text": "still here"})),
    ]
    seqs = [int(str(row["seq"])) for row in rows]
    assert seqs == sorted(seqs)


@in_module_loop
async def test_room_messages_lists_what_the_room_kept(story: Story) -> None:
    rows = await _rows(story, "room-messages", room="lobby")
    assert [(row["sender"], row["message"]) for row in rows] == [
        ("ada", "hello bob"),
        ("bob", "hi ada"),
        ("carol", "bye all"),
        ("bob", "still here"),
    ]
    assert await _rows(story, "room-messages", room="nowhere") == []


@in_module_loop
async def test_player_actions_lists_each_action_and_the_board_it_left(story: Story) -> None:
    rows = await _rows(story, "player-actions", match="match-1", player="ada")
    actions = [
        (json.loads(str(row["action"])), json.loads(str(row["board_after"]))) for row in rows
    ]
    x_at_4 = [*EMPTY[:4], "X", *EMPTY[5:]]
    assert actions == [
        ({"type": "move", "cell": 4}, EMPTY),  # refused: no second player yet
        ({"type": "move", "cell": 4}, x_at_4),
        ({"type": "move", "cell": 0}, x_at_4),  # refused: bob's turn
        ({"type": "move", "cell": 1}, ["O", "X", "", "", "X", "", "", "", ""]),
        ({"type": "move", "cell": 7}, ["O", "X", "", "O", "X", "", "", "X", ""]),  # the win
        ({"type": "reset"}, EMPTY),
    ]
    rows = await _rows(story, "player-actions", match="match-1", player="bob")
    assert [json.loads(str(row["action"]))["cell"] for row in rows] == [0, 3]
    assert await _rows(story, "player-actions", match="match-1", player="sam") == []


@in_module_loop
async def test_in_room_at_lists_who_was_there_at_a_time(story: Story) -> None:
    async def present(at: datetime) -> list[str | None]:
        rows = await _rows(story, "in-room-at", room="lobby", at=str(at))
        return [row["username"] for row in rows]

    assert await present(story.before_bob) == ["ada"]
    assert await present(story.with_carol) == ["ada", "bob", "carol"]
    assert await present(story.carol_left) == ["ada", "bob"]  # gone at the instant she left
    assert await present(await _database_now(story.database_url)) == ["ada", "bob"]
