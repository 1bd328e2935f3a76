"""Two nodes on one database, clients of one room on both: the frames of the client on the
node that does not run the room reach it through the inbox, each recorded once and in its
socket's order, and the room stays where it is (no node takes it from a live owner)."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest

from tests.cluster.support import (
    cluster_node,
    connect,
    messages,
    owner,
    released,
    room_state,
    socket_of,
)
from tests.support import eventually

pytestmark = pytest.mark.slow

ROUNDS = 40


async def test_frames_of_another_nodes_client_reach_the_owner_once_each_in_order(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        # n2 lets the room go as soon as it is idle; n1 keeps it.
        cluster_node(database_url, "n2", "--hibernate-after", "0.3") as n2,
        cluster_node(database_url, "n1", "--hibernate-after", "60") as n1,
        aiohttp.ClientSession() as http,
    ):
        b = await connect(http, n2, "b")
        await released(sql)
        a = await connect(http, n1, "a")
        runs_on = await owner(sql)
        assert runs_on[0] == "n1"
        a_socket, b_socket = await socket_of(sql, "a"), await socket_of(sql, "b")

        epochs = []
        for i in range(ROUNDS):
            await a.send(f"a{i}")
            await b.send(f"b{i}")
            if i % 10 == 0:
                epochs.append(await owner(sql))
                await asyncio.sleep(0.05)
        for i in range(ROUNDS):
            await a.expect(f"ack a{i}")

        async def all_recorded() -> bool:
            return len(await messages(sql)) == 2 * ROUNDS

        await eventually(all_recorded, timeout=20)
        recorded = await messages(sql)
        # Each socket's frames, once each, in the order its client sent them.
        assert [t for s, t in recorded if s == a_socket] == [f"a{i}" for i in range(ROUNDS)]
        assert [t for s, t in recorded if s == b_socket] == [f"b{i}" for i in range(ROUNDS)]
        # The handler ran once per frame, on the room's one instance.
        state = await room_state(http, n1)
        assert state["count"] == 2 * ROUNDS
        kept = [state[f"m{n:05d}"] for n in range(1, 2 * ROUNDS + 1)]
        assert [k for k in kept if k.startswith("b:")] == [f"b:b{i}" for i in range(ROUNDS)]
        # Nobody took the room while both ran: its owner and epoch never moved.
        assert set(epochs) == {runs_on}
        assert await owner(sql) == runs_on
        assert await sql.fetchval("SELECT count(*) FROM inbox") == 0
        assert a.frames[0] == "hello a" and not a.closed and not b.closed
        await a.close()
        await b.close()
