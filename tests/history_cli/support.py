"""The history commands against real data: a chat room served by a real node process, with
real WebSocket clients, on a database of the module's own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
from pytest_postgresql.executors.noop import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from tests.cli.process import Durable, child_env, durable
from tests.examples.support import EXAMPLES, receive_type

#: How long one command may take, in seconds.
TIMEOUT = 60.0


@dataclass
class Result:
    """A finished ``durable`` command."""

    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


async def run(*args: str, env: dict[str, str], timeout: float = TIMEOUT) -> Result:
    """Run ``durable`` to completion without blocking the event loop (clients stay served)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@contextlib.contextmanager
def module_database(template: NoopExecutor) -> Iterator[str]:
    """A database of its own, cloned from the suite's migrated template, dropped afterwards."""
    name = f"durable_history_cli_{os.getpid()}_{secrets.token_hex(3)}"
    janitor = DatabaseJanitor(
        user=template.user,
        host=template.host,
        port=template.port,
        dbname=name,
        template_dbname=template.template_dbname,
        password=template.password,
    )
    with janitor:
        auth = f"{template.user}:{template.password}" if template.password else template.user
        host = str(template.host)
        if host.startswith("/"):
            yield f"postgresql://{auth}@/{name}?host={host}&port={template.port}"
        else:
            yield f"postgresql://{auth}@{host}:{template.port}/{name}"


@dataclass
class Chat:
    """A chat node process and its clients, and the points of the scenario it went through."""

    database_url: str
    env: dict[str, str]
    node: Durable
    session: aiohttp.ClientSession
    clients: dict[str, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)
    #: Name -> the room's last seq at that point of the scenario.
    seqs: dict[str, int] = field(default_factory=dict)
    #: Name -> the database's clock at that point.
    times: dict[str, datetime] = field(default_factory=dict)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.database_url)
        try:
            rows: list[asyncpg.Record] = await connection.fetch(query, *args)
            return rows
        finally:
            await connection.close()

    async def mark(self, name: str, room: str = "lobby") -> None:
        """Note the room's last seq and the database's clock now."""
        rows = await self.sql(
            "SELECT coalesce((SELECT o.last_seq FROM objects AS o"
            "                  WHERE binding = 'CHAT' AND name = $1), 0) AS last_seq,"
            "       clock_timestamp() AS now",
            room,
        )
        self.seqs[name], self.times[name] = rows[0]["last_seq"], rows[0]["now"]
        await asyncio.sleep(0.02)  # later commits get a later time than this mark

    async def join(self, username: str, room: str = "lobby") -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(f"{self.node.url}/chat/{room}?username={username}")
        await receive_type(ws, "history")
        await receive_type(ws, "join")
        self.clients[username] = ws
        return ws

    async def say(self, username: str, text: str) -> None:
        """Send a chat message and wait until its sender has it back (it is committed)."""
        ws = self.clients[username]
        await ws.send_str(json.dumps({"type": "message", "text": text}))
        while True:
            frame = await receive_type(ws, "message")
            if frame["text"] == text:
                return

    async def leave(self, username: str, room: str = "lobby") -> None:
        """Close a client and wait until the log says its socket closed."""
        ws = self.clients.pop(username)
        await ws.close()
        for _ in range(500):
            rows = await self.sql(
                "SELECT count(*) AS open FROM websockets AS w JOIN objects AS o USING (object_id)"
                " WHERE o.name = $1 AND w.closed_at IS NULL AND w.attachment->>'username' = $2",
                room,
                username,
            )
            if rows[0]["open"] == 0:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{username}'s socket did not close")


@contextlib.asynccontextmanager
async def chat_node(database_url: str, *flags: str) -> AsyncIterator[Chat]:
    """``durable serve examples/chat`` on the database, and a client session for it."""
    env = child_env(database_url=database_url)
    args = ("serve", str(EXAMPLES / "chat"), "--port", "0", "--node-id", "history-node")
    async with durable(*args, *flags, env=env) as node:
        await node.serving()
        async with aiohttp.ClientSession() as session:
            chat = Chat(database_url, env, node, session)
            try:
                yield chat
            finally:
                for ws in chat.clients.values():
                    await ws.close()
        await node.stop()
