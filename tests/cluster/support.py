"""Nodes of one cluster as real processes on 127.0.0.1, clients over real sockets, and the
tables as SQL sees them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.cli.process import Durable, child_env, durable
from tests.support import eventually

ROOM = str(Path(__file__).parent / "apps" / "room.py")
CHAT = str(Path(__file__).parent / "apps" / "chat.py")
VERSIONED = str(Path(__file__).parent / "apps" / "versioned.py")

#: Seconds after its last heartbeat that a test node counts as dead (short, and still long
#: enough that a node starved of CPU by a busy machine does not miss a whole lease).
LEASE = 2.0

#: What a takeover may take beyond the lease: the survivor looks every third of a lease,
#: then claims, replays and runs the close handlers.
MARGIN = 3.0

#: A positions lock held by a test holds every flush (durable_flush_v1 takes it first).
POSITIONS_LOCK = 7305528449176000001


@contextlib.asynccontextmanager
async def cluster_node(
    database_url: str,
    node_id: str | None,
    *options: str,
    app: str = ROOM,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Durable]:
    """``durable serve`` of the room app (or ``app``), serving; ``node_id`` None: the
    default id; ``env``: more environment for the process.

    Polls are a minute apart, so only NOTIFY (and the catch-up after a listener's
    reconnect) can move work in a test's time."""
    args = ["serve", app, "--port", "0", "--lease-timeout", str(LEASE), "--poll-interval", "60"]
    if node_id is not None:
        args += ["--node-id", node_id]
    environment = child_env(env, database_url=database_url)
    async with durable(*args, *options, env=environment) as node:
        await node.serving()
        yield node


class Client:
    """A WebSocket client that keeps every frame it receives (text and binary apart), and
    how it closed."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[str] = []
        self.binary: list[bytes] = []
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                self.binary.append(message.data)
            self._changed.set()
        self.close_code = self.ws.close_code
        self._changed.set()

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def _until(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                assert not self.closed, f"closed ({self.close_code}) before {what}: {self.frames}"
                self._changed.clear()
                await self._changed.wait()

    async def expect(self, frame: str, timeout: float = 10) -> None:
        """Wait until ``frame`` has arrived; fail if the socket closes first."""
        await self._until(lambda: frame in self.frames, repr(frame), timeout)

    async def received(self, count: int, timeout: float = 20) -> list[str]:
        """Wait until ``count`` text frames have arrived; fail if the socket closes first."""
        await self._until(lambda: len(self.frames) >= count, f"{count} frames", timeout)
        return self.frames

    async def received_binary(self, count: int, timeout: float = 20) -> list[bytes]:
        """Wait until ``count`` binary frames have arrived."""
        await self._until(lambda: len(self.binary) >= count, f"{count} binary frames", timeout)
        return self.binary

    async def wait_closed(self, timeout: float = 10) -> None:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader


async def connect(http: aiohttp.ClientSession, node: Durable, who: str) -> Client:
    """``who`` joins room ``r`` through ``node``."""
    ws = await http.ws_connect(f"{node.url}/room/r?who={who}")
    client = Client(ws)
    await client.expect(f"hello {who}")
    return client


async def room_state(http: aiohttp.ClientSession, node: Durable) -> dict[str, Any]:
    """The room's storage, as the node that answers rebuilt it."""
    async with http.get(f"{node.url}/room/r", timeout=aiohttp.ClientTimeout(total=10)) as r:
        assert r.status == 200, await r.text()
        state: dict[str, Any] = await r.json()
        return state


async def owner(sql: asyncpg.Connection) -> tuple[str | None, int]:
    """The room's owner node and owner epoch."""
    row = await sql.fetchrow("SELECT owner_node, owner_epoch FROM objects WHERE name = 'r'")
    assert row is not None
    return row["owner_node"], row["owner_epoch"]


async def released(sql: asyncpg.Connection, timeout: float = 10) -> None:
    """Wait until the room's owner let it go (it hibernated)."""

    async def check() -> bool:
        return (await owner(sql))[0] is None

    await eventually(check, timeout=timeout)


async def socket_of(sql: asyncpg.Connection, who: str) -> str:
    socket_id: str = await sql.fetchval(
        "SELECT socket_id FROM websockets WHERE attachment->>'who' = $1", who
    )
    return socket_id


async def messages(sql: asyncpg.Connection) -> list[tuple[str, str]]:
    """(socket id, text) of every message the room recorded, in log order."""
    rows = await sql.fetch(
        "SELECT e.data FROM events AS e JOIN objects AS o USING (object_id)"
        " WHERE o.name = 'r' AND e.type = 'message_received' ORDER BY e.seq"
    )
    return [(d["socket_id"], d["text"]) for d in (json.loads(r["data"]) for r in rows)]


async def closes(sql: asyncpg.Connection) -> list[dict[str, Any]]:
    """The room's websocket_closed events, in log order."""
    rows = await sql.fetch(
        "SELECT e.data FROM events AS e JOIN objects AS o USING (object_id)"
        " WHERE o.name = 'r' AND e.type = 'websocket_closed' ORDER BY e.seq"
    )
    return [json.loads(r["data"]) for r in rows]


async def said(sql: asyncpg.Connection) -> list[tuple[int, str]]:
    """(seq, message) of every line the room logged, in order."""
    rows = await sql.fetch(
        "SELECT l.seq, l.message FROM object_logs AS l JOIN objects AS o USING (object_id)"
        " WHERE o.name = 'r' AND l.logger = 'room' ORDER BY l.seq, l.id"
    )
    return [(r["seq"], r["message"]) for r in rows]
