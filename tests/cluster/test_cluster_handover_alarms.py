"""Alarms go where their objects go: an alarm set on a host fires on the other host once the
first hands its objects over (SIGTERM), and after every node of the cluster restarted."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import asyncpg
import pytest

from tests.cluster.support import cluster_node, connect, owner
from tests.support import eventually

pytestmark = pytest.mark.slow

GATEWAY = ("--role", "gateway")
HOST = ("--role", "host", "--hibernate-after", "600")


async def alarm_runs(sql: asyncpg.Connection) -> list[str | None]:
    """One entry per run of the room's alarm so far: the node that owns the room now."""
    return [
        r["owner_node"]
        for r in await sql.fetch(
            "SELECT o.owner_node FROM events AS e JOIN objects AS o USING (object_id)"
            " WHERE o.name = 'r' AND e.type = 'alarm_fired' ORDER BY e.seq"
        )
    ]


async def test_an_alarm_fires_on_the_other_host_after_a_handover_and_after_a_full_restart(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        g, h1, h2 = await asyncio.gather(
            stack.enter_async_context(cluster_node(database_url, "g", *GATEWAY)),
            stack.enter_async_context(cluster_node(database_url, "h1", *HOST)),
            stack.enter_async_context(cluster_node(database_url, "h2", *HOST)),
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        a = await connect(http, g, "a")
        await a.send("alarm 2")
        await a.expect("ack alarm 2")
        first, _ = await owner(sql)
        leaving, other = (h1, "h2") if first == "h1" else (h2, "h1")
        assert await leaving.stop() == 0, leaving.output

        async def moved() -> bool:  # at once, well before the alarm is due
            return (await owner(sql))[0] == other

        await eventually(moved, timeout=1)

        async def fired_once() -> bool:
            return len(await alarm_runs(sql)) == 1

        await eventually(fired_once, timeout=10)
        assert await alarm_runs(sql) == [other]
        async with http.get(f"{g.url}/room/r") as response:
            assert (await response.json())["alarm"] == "fired"

        # Every node goes, the alarm falls due while none runs, and all start again.
        back = await stack.enter_async_context(cluster_node(database_url, first, *HOST))
        await a.send("alarm 3")
        await a.expect("ack alarm 3")
        survivor = h2 if other == "h2" else h1
        codes = await asyncio.gather(g.stop(), back.stop(), survivor.stop())
        assert codes == [0, 0, 0]
        await a.wait_closed()
        assert a.close_code == 1001
        set_at = time.monotonic()
        await asyncio.sleep(3.5)
        assert len(await alarm_runs(sql)) == 1
        restarted = await asyncio.gather(
            stack.enter_async_context(cluster_node(database_url, "g", *GATEWAY)),
            stack.enter_async_context(cluster_node(database_url, "h1", *HOST)),
            stack.enter_async_context(cluster_node(database_url, "h2", *HOST)),
        )

        async def fired_again() -> bool:
            return len(await alarm_runs(sql)) == 2

        await eventually(fired_again, timeout=15)
        print(f"the alarm set before the restart fired {time.monotonic() - set_at:.1f} s later")
        assert (await alarm_runs(sql))[-1] in ("h1", "h2")
        async with http.get(f"{restarted[0].url}/room/r") as response:
            state = await response.json()
        assert state["alarm"] == "fired" and state["count"] == 2
