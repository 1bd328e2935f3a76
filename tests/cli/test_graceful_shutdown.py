"""SIGTERM with clients connected: 1001 to every client, exit 0, nothing acknowledged lost."""

from __future__ import annotations

import json

import aiohttp
import asyncpg
from aiohttp import WSMsgType

from tests.cli.process import ECHO, child_env, durable
from tests.support import eventually, fold_all


async def _connect(
    session: aiohttp.ClientSession, url: str, name: str
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await session.ws_connect(f"{url}/echo/{name}")
    greeting = await ws.receive_str(timeout=10)
    assert greeting.startswith("id ")
    return ws, greeting.removeprefix("id ")


async def _hibernated(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    return "durable_hibernated_objects 1.0" in text and "durable_live_objects 0.0" in text


async def _rows(database_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        rows: list[asyncpg.Record] = await connection.fetch(query, *args)
        return rows
    finally:
        await connection.close()


async def _socket_row(database_url: str, object_id: str) -> asyncpg.Record:
    rows = await _rows(
        database_url,
        "SELECT socket_id, closed_at, close_code, close_reason, was_clean"
        "  FROM websockets WHERE object_id = $1",
        object_id,
    )
    assert len(rows) == 1
    return rows[0]


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """The code of the Close frame the node sends (after any text frames still coming)."""
    while (message := await ws.receive(timeout=20)).type is WSMsgType.TEXT:
        pass
    assert message.type is WSMsgType.CLOSE, message
    return int(message.data)


async def test_sigterm_closes_a_live_objects_sockets_with_1001(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with durable("serve", ECHO, "--port", "0", "--node-id", "leaving", env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            ws, object_id = await _connect(session, url, "live")
            for n in range(5):
                await ws.send_str(f"m{n}")
                assert await ws.receive_str(timeout=10) == f"echo m{n}"
            node.process.terminate()
            assert await _close_code(ws) == 1001
        assert await node.exited(timeout=30) == 0, node.output
    assert "Traceback" not in node.output

    row = await _socket_row(database_url, object_id)
    # The object was live: it ran its close handler, and the close is in its log.
    assert row["closed_at"] is not None
    assert (row["close_code"], row["close_reason"], row["was_clean"]) == (1001, "Going Away", True)
    state = await fold_all(database_url, object_id)
    assert {f"m:m{n}" for n in range(5)} <= set(state.storage)
    assert "closed" in state.storage
    inbox = await _rows(database_url, "SELECT 1 FROM inbox WHERE object_id = $1", object_id)
    assert inbox == []


async def test_sigterm_with_a_hibernated_object_queues_its_close(database_url: str) -> None:
    env = child_env(database_url=database_url)
    args = ("serve", ECHO, "--port", "0", "--hibernate-after", "0.3", "--node-id", "leaving")
    async with durable(*args, env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            ws, object_id = await _connect(session, url, "asleep")
            await ws.send_str("before")
            assert await ws.receive_str(timeout=10) == "echo before"
            await eventually(lambda: _hibernated(session, url), timeout=15, interval=0.2)
            node.process.terminate()
            assert await _close_code(ws) == 1001
        assert await node.exited(timeout=30) == 0, node.output
    assert "Traceback" not in node.output

    # The object was not in memory: its close waits in the inbox for the next wake, and
    # the presence row stays open until the object has seen it.
    row = await _socket_row(database_url, object_id)
    assert row["closed_at"] is None
    inbox = await _rows(
        database_url, "SELECT kind, socket_id, data FROM inbox WHERE object_id = $1", object_id
    )
    assert [(r["kind"], r["socket_id"]) for r in inbox] == [("close", row["socket_id"])]
    close = json.loads(inbox[0]["data"])
    assert (close["code"], close["reason"], close["was_clean"]) == (1001, "Going Away", True)

    # The next node to start delivers it: the object runs its close handler.
    async with durable("serve", ECHO, "--port", "0", "--node-id", "next", env=env) as node:
        await node.serving()

        async def delivered() -> bool:
            return (await _socket_row(database_url, object_id))["closed_at"] is not None

        await eventually(delivered, timeout=20, interval=0.2)
        assert await node.stop() == 0
    row = await _socket_row(database_url, object_id)
    assert (row["close_code"], row["close_reason"], row["was_clean"]) == (1001, "Going Away", True)
    state = await fold_all(database_url, object_id)
    assert state.storage.keys() >= {"m:before", "closed"}
    assert await _rows(database_url, "SELECT 1 FROM inbox WHERE object_id = $1", object_id) == []


async def test_acknowledged_messages_survive_a_sigterm_mid_burst(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with durable("serve", ECHO, "--port", "0", "--node-id", "leaving", env=env) as node:
        url = await node.serving()
        acknowledged: set[str] = set()
        async with aiohttp.ClientSession() as session:
            ws, object_id = await _connect(session, url, "burst")
            for n in range(100):
                await ws.send_str(f"a{n}")
            for _ in range(100):
                acknowledged.add((await ws.receive_str(timeout=10)).removeprefix("echo "))
            for n in range(200):  # in flight when the signal comes
                await ws.send_str(f"b{n}")
            node.process.terminate()
            while (message := await ws.receive(timeout=20)).type is WSMsgType.TEXT:
                acknowledged.add(message.data.removeprefix("echo "))
            assert (message.type, message.data) == (WSMsgType.CLOSE, 1001)
        assert await node.exited(timeout=30) == 0, node.output
    assert len(acknowledged) >= 100
    state = await fold_all(database_url, object_id)
    stored = {key.removeprefix("m:") for key in state.storage if key.startswith("m:")}
    assert acknowledged <= stored
