"""The owner's LISTEN connection is killed while another node routes frames to it: it comes
back by itself and catches up from the inbox, missing nothing (the notifications sent while
it was away went nowhere; the table still has every row)."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest

from tests.cluster.support import cluster_node, connect, messages, owner, released, socket_of
from tests.support import eventually

pytestmark = pytest.mark.slow

LISTENER = (
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'durable n1 listener'"
    " AND datname = current_database()"
)


async def test_a_killed_listener_comes_back_and_misses_nothing(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n2", "--hibernate-after", "0.3") as n2,
        cluster_node(database_url, "n1", "--hibernate-after", "60") as n1,
        aiohttp.ClientSession() as http,
    ):
        b = await connect(http, n2, "b")
        await released(sql)
        a = await connect(http, n1, "a")
        runs_on = await owner(sql)
        await b.send("b-first")

        async def recorded(count: int) -> bool:
            return len(await messages(sql)) == count

        await eventually(lambda: recorded(1), timeout=10)

        (old_pid,) = [r["pid"] for r in await sql.fetch(LISTENER)]
        assert await sql.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        # Sent at once: the first wakes are lost with the connection.
        for i in range(20):
            await b.send(f"b{i}")

        # Polls are a minute apart: only the catch-up after the reconnect can do this.
        await eventually(lambda: recorded(21), timeout=15)
        b_socket = await socket_of(sql, "b")
        assert [t for s, t in await messages(sql) if s == b_socket] == [
            "b-first",
            *(f"b{i}" for i in range(20)),
        ]
        assert await sql.fetchval("SELECT count(*) FROM inbox") == 0
        (new_pid,) = [r["pid"] for r in await sql.fetch(LISTENER)]
        assert new_pid != old_pid
        assert await owner(sql) == runs_on
        await a.close()
        await b.close()
