"""Roles and planned restarts: gateways hold the clients, hosts run the objects; a host
restarted with new code (SIGTERM, then started again) hands its objects over first, so no
client of a gateway notices anything but the new code. A host refuses clients (421), a
gateway with no host answers 503, and a node of role ``all`` that restarts drops only its
own clients."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import asyncpg
import pytest

from service.runtime.placement import rendezvous
from tests.cli.process import Durable
from tests.cluster.support import LEASE, VERSIONED, cluster_node
from tests.support import eventually

pytestmark = pytest.mark.slow

#: Objects stay in memory on their own for the whole test: only a handover moves them.
KEEP = ("--hibernate-after", "600")

#: How long after its host's SIGTERM an object must run on another host.
MOVE_WITHIN = 1.0


class Chatter:
    """A client of one room that sends a numbered message every few milliseconds and keeps
    every frame it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, room: str, who: str) -> None:
        self.ws = ws
        self.room = room
        self.who = who
        self.sent = 0
        self.frames: list[str] = []
        self._sending = True
        self._reader = asyncio.ensure_future(self._read())
        self._sender: asyncio.Future[None] | None = None

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(message.data)

    def start(self, interval: float) -> None:
        self._sender = asyncio.ensure_future(self._send(interval))

    async def _send(self, interval: float) -> None:
        while self._sending:
            await self.ws.send_str(f"{self.who}{self.sent}")
            self.sent += 1
            await asyncio.sleep(interval)

    async def stop_sending(self) -> None:
        self._sending = False
        assert self._sender is not None
        await self._sender

    @property
    def connected(self) -> bool:
        return not self._reader.done()

    def chat(self) -> list[tuple[str, int, str]]:
        """(version, count, text) of every chat frame, in arrival order."""
        parsed = []
        for frame in self.frames:
            if frame.startswith("hello "):
                continue
            version, count, text = frame.split(" ", 2)
            parsed.append((version, int(count), text))
        return parsed


async def join(http: aiohttp.ClientSession, node: Durable, room: str, who: str) -> Chatter:
    ws = await http.ws_connect(f"{node.url}/room/{room}?who={who}")
    first = await ws.receive(timeout=15)
    assert first.data == f"hello {who}", first
    return Chatter(ws, room, who)


async def owners(sql: asyncpg.Connection) -> dict[str, str | None]:
    rows = await sql.fetch("SELECT name, owner_node FROM objects")
    return {r["name"]: r["owner_node"] for r in rows}


async def moves(sql: asyncpg.Connection, leaving: str, rooms: list[str]) -> dict[str, float]:
    """Seconds until each room of ``rooms`` is owned by a node other than ``leaving``."""
    started = time.monotonic()
    moved: dict[str, float] = {}
    while len(moved) < len(rooms) and time.monotonic() - started < 15:
        for name, node in (await owners(sql)).items():
            if name in rooms and name not in moved and node not in (None, leaving):
                moved[name] = time.monotonic() - started
        await asyncio.sleep(0.005)
    return moved


def host(version: str) -> dict[str, str]:
    return {"ROOM_VERSION": version}


async def test_a_rolling_restart_of_the_hosts_keeps_every_gateway_client_connected(
    database_url: str, sql: asyncpg.Connection
) -> None:
    gateway = ("--role", "gateway")
    hosted = ("--role", "host", *KEEP)
    async with contextlib.AsyncExitStack() as stack:
        g1, g2, h1, h2 = await asyncio.gather(
            stack.enter_async_context(cluster_node(database_url, "g1", *gateway, app=VERSIONED)),
            stack.enter_async_context(cluster_node(database_url, "g2", *gateway, app=VERSIONED)),
            stack.enter_async_context(
                cluster_node(database_url, "h1", *hosted, app=VERSIONED, env=host("v1"))
            ),
            stack.enter_async_context(
                cluster_node(database_url, "h2", *hosted, app=VERSIONED, env=host("v1"))
            ),
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        # The gateways read the live hosts every heartbeat (a third of the lease): wait for
        # one, so both know both hosts (they started together).
        await asyncio.sleep(LEASE / 3 + 0.3)
        rooms = ["room0", "room1", "room2"]
        clients = []
        for room in rooms:  # one client of each room on each gateway
            clients.append(await join(http, g1, room, f"{room}a"))
            clients.append(await join(http, g2, room, f"{room}b"))

        # Each room runs on the host rendezvous hashing chose for it, not on a gateway.
        ids = {r["name"]: r["object_id"] for r in await sql.fetch("SELECT * FROM objects")}
        placed = await owners(sql)
        assert placed == {room: rendezvous(ids[room], ["h1", "h2"]) for room in rooms}

        for client in clients:
            client.start(0.03)
        await asyncio.sleep(1)

        restarted = {}
        for name, node in (("h1", h1), ("h2", h2)):
            before = await owners(sql)
            leaving = [room for room in rooms if before[room] == name]
            watch = asyncio.ensure_future(moves(sql, name, leaving))
            signalled = time.monotonic()
            assert await node.stop() == 0, node.output
            stopped = time.monotonic() - signalled
            took = await watch
            print(
                f"{name}: SIGTERM to exit {stopped:.3f} s; rooms moved after "
                + ", ".join(f"{room} {took[room] * 1000:.0f} ms" for room in sorted(took))
            )
            assert set(took) == set(leaving), (took, leaving, node.output)
            assert all(seconds < MOVE_WITHIN for seconds in took.values()), took
            restarted[name] = await stack.enter_async_context(
                cluster_node(database_url, name, *hosted, app=VERSIONED, env=host("v2"))
            )
            await asyncio.sleep(1)  # chat on, with the new host in the cluster

        for client in clients:
            await client.stop_sending()
        assert all(client.connected for client in clients), "a client was disconnected"

        for room in rooms:
            a, b = [c for c in clients if c.room == room]
            expected = a.sent + b.sent

            async def all_arrived(a: Chatter = a, b: Chatter = b, n: int = expected) -> bool:
                return len(a.chat()) >= n and len(b.chat()) >= n

            await eventually(all_arrived, timeout=15)
            # Every message once, to both clients, in one order, each sender's in its order.
            assert a.chat() == b.chat()
            chat = a.chat()
            for sender in (a, b):
                own = [text for _, _, text in chat if text.startswith(f"{sender.who}:")]
                assert own == [f"{sender.who}:{sender.who}{i}" for i in range(sender.sent)]
            assert [count for _, count, _ in chat] == list(range(1, expected + 1))
            # It ended on the new code, rebuilt from its log (the count went on).
            assert chat[-1][0] == "v2", chat[-5:]
            async with http.get(f"{g1.url}/room/{room}") as response:
                assert await response.text() == f"v2 {expected}"
        assert all(client.connected for client in clients)
        for client in clients:
            await client.ws.close()


async def test_a_host_refuses_clients_and_a_gateway_without_hosts_answers_503(
    database_url: str,
) -> None:
    async with (
        cluster_node(database_url, "g", "--role", "gateway", app=VERSIONED) as gateway,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{gateway.url}/room/r") as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            assert "no host is running" in await response.text()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{gateway.url}/room/r?who=a")
        assert refused.value.status == 503

        async with cluster_node(database_url, "h", "--role", "host", app=VERSIONED) as hosting:
            async with http.get(f"{hosting.url}/room/r") as response:
                assert response.status == 421
                assert "this node is a host" in await response.text()
            with pytest.raises(aiohttp.WSServerHandshakeError) as misdirected:
                await http.ws_connect(f"{hosting.url}/room/r?who=a")
            assert misdirected.value.status == 421
            async with http.get(f"{hosting.url}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{hosting.url}/metrics") as response:
                assert response.status == 200
            # The gateway finds the host that started, and the room runs there.
            async with http.get(f"{gateway.url}/room/r") as response:
                assert (response.status, await response.text()) == (200, "v1 0")


async def test_restarting_a_node_of_role_all_drops_only_its_own_clients(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        n1, n2 = await asyncio.gather(
            stack.enter_async_context(cluster_node(database_url, "n1", *KEEP, app=VERSIONED)),
            stack.enter_async_context(cluster_node(database_url, "n2", *KEEP, app=VERSIONED)),
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        # Room x runs on n1 (its first client is there), room y on n2; each has a client on
        # each node.
        x1 = await join(http, n1, "x", "x1")
        x2 = await join(http, n2, "x", "x2")
        y2 = await join(http, n2, "y", "y2")
        y1 = await join(http, n1, "y", "y1")
        assert await owners(sql) == {"x": "n1", "y": "n2"}
        staying = [x2, y2]
        for client in staying:
            client.start(0.03)
        await asyncio.sleep(0.5)

        assert await n1.stop() == 0, n1.output
        for gone in (x1, y1):
            await asyncio.wait_for(asyncio.shield(gone._reader), 10)
            assert gone.ws.close_code == 1001
        await asyncio.sleep(0.5)
        for client in staying:
            await client.stop_sending()
        assert all(client.connected for client in staying)
        assert (await owners(sql))["x"] == "n2"
        for client in staying:

            async def all_arrived(c: Chatter = client) -> bool:
                return len([t for _, _, t in c.chat() if t.startswith(f"{c.who}:")]) >= c.sent

            await eventually(all_arrived, timeout=15)
            own = [t for _, _, t in client.chat() if t.startswith(f"{client.who}:")]
            assert own == [f"{client.who}:{client.who}{i}" for i in range(client.sent)]
            counts = [count for _, count, _ in client.chat()]
            assert counts == sorted(set(counts))  # once each, in order
        for client in staying:
            await client.ws.close()
