"""The database goes away under a running node: 503s with a message, then recovery."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from tests.cli.process import ECHO, child_env, database_of, durable, with_database
from tests.support import eventually, fold_all

#: Seconds a commit retries before giving up (the node is started with this).
RETRY = 1.0
#: How long any request may take during the outage: the retry window plus slack.
BOUND = RETRY + 10


@pytest.fixture
async def outage(database_url: str) -> AsyncIterator[Outage]:
    switch = Outage(database_url)
    try:
        yield switch
    finally:
        await switch.end()


class Outage:
    """Takes one database away from its clients (and gives it back) from the server side."""

    def __init__(self, database_url: str) -> None:
        self.name = database_of(database_url)
        self.admin_url = with_database(database_url, "postgres")

    async def _admin(self, *statements: tuple[str, ...]) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            for statement, *args in statements:
                await connection.execute(statement, *args)
        finally:
            await connection.close()

    async def begin(self) -> None:
        await self._admin(
            (f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',),
            (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.name,
            ),
        )

    async def end(self) -> None:
        await self._admin((f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true',))


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=BOUND)
    async with session.get(url, timeout=timeout) as response:
        return response.status, await response.text(), time.monotonic() - started


async def test_outage_gives_503_and_the_node_recovers(database_url: str, outage: Outage) -> None:
    env = child_env(
        {"DURABLE_COMMIT_RETRY_SECONDS": str(RETRY), "DURABLE_POLL_INTERVAL": "0.5"},
        database_url=database_url,
    )
    async with durable("serve", ECHO, "--port", "0", "--node-id", "shaky", env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            status, body, _ = await _get(session, f"{url}/healthz")
            assert (status, body) == (200, '{"status": "ok", "database": "reachable"}')
            ws = await session.ws_connect(f"{url}/echo/steady")
            object_id = (await ws.receive_str(timeout=10)).removeprefix("id ")
            acknowledged: set[str] = set()
            for n in range(5):
                await ws.send_str(f"m{n}")
                assert await ws.receive_str(timeout=10) == f"echo m{n}"
                acknowledged.add(f"m{n}")
            assert (await _get(session, f"{url}/echo/steady"))[:2] == (200, "1")

            await outage.begin()
            status, body, _ = await _get(session, f"{url}/healthz")
            assert status == 503
            report = json.loads(body)
            assert report["status"] == "unavailable"
            assert report["database"]  # the reason, as the driver saw it first
            # A live object whose commit fails, and one that cannot even be loaded: both
            # answer 503 with the reason, within the retry window (no hang).
            for name in ("steady", "newcomer"):
                status, body, took = await _get(session, f"{url}/echo/{name}")
                assert status == 503, body
                assert body.startswith("Service unavailable: ")
                assert took < BOUND

            await outage.end()

            async def healthy() -> bool:
                return (await _get(session, f"{url}/healthz"))[0] == 200

            await eventually(healthy, timeout=30, interval=0.3)
            # The failed request did not count; the new object is created now.
            assert (await _get(session, f"{url}/echo/steady"))[:2] == (200, "2")
            assert (await _get(session, f"{url}/echo/newcomer"))[:2] == (200, "1")
            # The client stayed connected through the outage.
            await ws.send_str("after")
            assert await ws.receive_str(timeout=15) == "echo after"
            acknowledged.add("after")
            await ws.close()
        assert await node.stop() == 0
    assert "Traceback" not in node.output
    state = await fold_all(database_url, object_id)
    assert {f"m:{m}" for m in acknowledged} <= set(state.storage)
    assert state.storage.keys() >= {"count", "closed"}
