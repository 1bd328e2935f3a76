"""Draining: a host on its way out (SIGTERM) marks itself draining in ``nodes`` before it
hands its objects over. Nobody sends it new objects while another host is live, so two
hosts stopping together hand theirs to the third, each object once; a draining host that is
killed mid-drain is taken over when its lease runs out, like any dead node."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import signal
import time

import aiohttp
import asyncpg
import pytest

from service.api.ids import IdFactory
from service.runtime.placement import rendezvous
from tests.cluster.support import LEASE, MARGIN, VERSIONED, cluster_node
from tests.cluster.test_cluster_roles import Chatter, join
from tests.support import eventually

pytestmark = pytest.mark.slow

#: Objects stay in memory on their own for the whole test: only a handover moves them.
KEEP = ("--hibernate-after", "600")

#: How long after the SIGTERMs every object of the two leaving hosts must run on the third.
MOVE_WITHIN = 1.5

#: Rooms of the first test, as rendezvous hashing places them over h1, h2 and h3: room0,
#: room1 and room4 on h1, with h2 next (a host leaving alone would pass them to h2), room3
#: on h2 with h1 next, room2 on h2 and room12 on h1 with h3 next, room24 on h3.
ROOMS = ["room0", "room1", "room2", "room3", "room4", "room12", "room24"]


def object_id(room: str) -> str:
    return str(IdFactory("ROOM").from_name(room))


async def owners(sql: asyncpg.Connection) -> dict[str, tuple[str | None, int]]:
    """Each room's owner node and owner epoch (raised by every claim: a move)."""
    rows = await sql.fetch("SELECT name, owner_node, owner_epoch FROM objects")
    return {r["name"]: (r["owner_node"], r["owner_epoch"]) for r in rows}


async def arrivals(sql: asyncpg.Connection, host: str, rooms: list[str]) -> dict[str, float]:
    """Seconds until each room of ``rooms`` is owned by ``host`` (at most 15)."""
    started = time.monotonic()
    arrived: dict[str, float] = {}
    while len(arrived) < len(rooms) and time.monotonic() - started < 15:
        for name, (node, _) in (await owners(sql)).items():
            if name in rooms and name not in arrived and node == host:
                arrived[name] = time.monotonic() - started
        await asyncio.sleep(0.005)
    return arrived


class Wakes:
    """The wakes the database sends each node (NOTIFY on its channel), as a listener of its
    own hears them: which node was asked to run which objects."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        #: (node, object id) of every wake heard, in order.
        self.heard: list[tuple[str, str]] = []

    async def listen(self, *nodes: str) -> None:
        for node in nodes:
            channel = await self._connection.fetchval("SELECT durable_channel_v1($1)", node)
            await self._connection.add_listener(channel, functools.partial(self._heard, node))

    def _heard(self, node: str, *args: object) -> None:
        payload = json.loads(str(args[3]))
        self.heard.extend((node, object_id) for object_id in payload.get("object_ids") or [])


async def delivered_once_in_order(client: Chatter) -> None:
    """Every message the client sent came back once, in order, numbered without a gap."""

    async def all_back() -> bool:
        return len(client.chat()) >= client.sent

    await eventually(all_back, timeout=15)
    chat = client.chat()
    assert [text for _, _, text in chat] == [
        f"{client.who}:{client.who}{i}" for i in range(client.sent)
    ]
    assert [count for _, count, _ in chat] == list(range(1, client.sent + 1))


async def test_two_hosts_stopping_together_hand_their_objects_to_the_third_once_each(
    database_url: str, sql: asyncpg.Connection
) -> None:
    hosted = ("--role", "host", *KEEP)
    async with contextlib.AsyncExitStack() as stack:
        gateway, h1, h2, _ = await asyncio.gather(
            stack.enter_async_context(
                cluster_node(database_url, "g", "--role", "gateway", app=VERSIONED)
            ),
            *(
                stack.enter_async_context(cluster_node(database_url, name, *hosted, app=VERSIONED))
                for name in ("h1", "h2", "h3")
            ),
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        await asyncio.sleep(LEASE / 3 + 0.3)  # the gateway has read all three hosts
        clients = [await join(http, gateway, room, room) for room in ROOMS]
        before = await owners(sql)
        hosts = ["h1", "h2", "h3"]
        assert {r: before[r][0] for r in ROOMS} == {
            r: rendezvous(object_id(r), hosts) for r in ROOMS
        }
        # Rooms each leaving host, leaving alone, would hand to the other one.
        for leaving, other in (("h1", "h2"), ("h2", "h1")):
            assert any(
                before[r][0] == leaving and rendezvous(object_id(r), ["h3", other]) == other
                for r in ROOMS
            )
        for client in clients:
            client.start(0.05)
        await asyncio.sleep(1)

        listener = await asyncpg.connect(database_url)
        stack.push_async_callback(listener.close)
        wakes = Wakes(listener)
        await wakes.listen("h1", "h2")
        moving = [r for r in ROOMS if before[r][0] != "h3"]
        watch = asyncio.ensure_future(arrivals(sql, "h3", moving))
        for node in (h1, h2):  # at the same moment
            node.process.send_signal(signal.SIGTERM)
        assert await asyncio.gather(h1.exited(30), h2.exited(30)) == [0, 0]
        took = await watch
        print("rooms on h3 after " + ", ".join(f"{r} {took[r] * 1000:.0f} ms" for r in took))
        assert set(took) == set(moving), (took, h1.output, h2.output)
        assert all(seconds < MOVE_WITHIN for seconds in took.values()), took

        # One move each (a claim raises the epoch): nothing ran on a leaving host but its
        # own rooms, and the third host's rooms stayed where they were.
        after = await owners(sql)
        assert {r: after[r] for r in ROOMS} == {
            r: ("h3", before[r][1] + (r in moving)) for r in ROOMS
        }
        # Nobody sent a leaving host an object it did not run: no room passed back and
        # forth between them (what a leaving host runs wakes it until it lets it go).
        rooms = {object_id(r): r for r in ROOMS}
        strays = [(node, rooms[o]) for node, o in wakes.heard if before[rooms[o]][0] != node]
        assert strays == [], strays
        assert "on to h2" not in h1.output and "on to h1" not in h2.output
        assert "on to h3" in h1.output and "on to h3" in h2.output

        # Both were marked draining from their SIGTERM until their stop; h3 never was.
        rows = await sql.fetch("SELECT node_id, draining_at, stopped_at FROM nodes")
        marks = {r["node_id"]: (r["draining_at"], r["stopped_at"]) for r in rows}
        for name in ("h1", "h2"):
            draining, stopped = marks[name]
            assert draining is not None and stopped is not None and draining <= stopped
        assert marks["h3"] == (None, None)

        for client in clients:
            await client.stop_sending()
        assert all(client.connected for client in clients), "a client was disconnected"
        for client in clients:
            await delivered_once_in_order(client)
            await client.ws.close()


async def test_a_draining_host_killed_mid_drain_is_taken_over_when_its_lease_runs_out(
    database_url: str, sql: asyncpg.Connection
) -> None:
    # The room runs on the victim; while it drains, a new room that rendezvous hashing
    # would give it goes to the survivor.
    room, new_room = "room0", "room4"
    for name in (room, new_room):
        assert rendezvous(object_id(name), ["survivor", "victim"]) == "victim"
    async with contextlib.AsyncExitStack() as stack:
        gateway, victim, _ = await asyncio.gather(
            stack.enter_async_context(
                cluster_node(database_url, "g", "--role", "gateway", app=VERSIONED)
            ),
            stack.enter_async_context(
                cluster_node(
                    database_url,
                    "victim",
                    "--role",
                    "host",
                    "--shutdown-timeout",
                    "30",
                    *KEEP,
                    app=VERSIONED,
                    env={"ROOM_SLOW": "60"},
                )
            ),
            stack.enter_async_context(
                cluster_node(database_url, "survivor", "--role", "host", *KEEP, app=VERSIONED)
            ),
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        await asyncio.sleep(LEASE / 3 + 0.3)
        client = await join(http, gateway, room, "a")
        assert (await owners(sql))[room][0] == "victim"
        await client.ws.send_str("a0")
        await client.ws.send_str("slow")  # the victim takes a minute over this one
        await client.ws.send_str("a1")

        async def first_back() -> bool:
            return len(client.chat()) == 1

        await eventually(first_back, timeout=10)
        await asyncio.sleep(0.5)  # the victim is in the slow turn, a1 waits behind it

        # SIGTERM: it marks itself draining and waits for the turn in flight, still live.
        victim.process.send_signal(signal.SIGTERM)

        async def marked() -> bool:
            row = await sql.fetchrow("SELECT draining_at FROM live_nodes WHERE node_id = 'victim'")
            return row is not None and row["draining_at"] is not None

        await eventually(marked, timeout=10)
        assert (await owners(sql))[room][0] == "victim"
        async with http.get(f"{gateway.url}/room/{new_room}") as response:
            assert (response.status, await response.text()) == (200, "v1 0")
        assert (await owners(sql))[new_room][0] == "survivor"
        assert "on to" not in victim.output

        victim.process.kill()
        killed = time.monotonic()
        await victim.exited(10)

        async def taken_over() -> bool:
            return (await owners(sql))[room][0] == "survivor"

        await eventually(taken_over, timeout=LEASE + MARGIN + 5)
        assert time.monotonic() - killed < LEASE + MARGIN
        row = await sql.fetchrow(
            "SELECT draining_at, stopped_at, swept_by FROM nodes WHERE node_id = 'victim'"
        )
        assert row["draining_at"] is not None and row["stopped_at"] is None
        assert row["swept_by"] == "survivor"

        # The survivor ran what the victim had not committed, in order; nothing was lost and
        # the client stayed connected.
        async def all_back() -> bool:
            return len(client.chat()) >= 3

        await eventually(all_back, timeout=10)
        assert client.chat() == [("v1", 1, "a:a0"), ("v1", 2, "a:slow"), ("v1", 3, "a:a1")]
        assert client.connected
        await client.ws.close()
