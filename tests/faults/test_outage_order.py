"""A frame sent during an outage is handled after it, in order with later frames."""

from __future__ import annotations

import importlib.util

import asyncpg
from aiohttp.test_utils import TestClient

from tests.cli.process import APPS, database_of, with_database
from tests.support import eventually, serve

spec = importlib.util.spec_from_file_location("echo_app", APPS / "echo.py")
assert spec is not None and spec.loader is not None
echo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(echo)


async def _admin(url: str, *statements: tuple) -> None:
    connection = await asyncpg.connect(with_database(url, "postgres"))
    for statement, *args in statements:
        await connection.execute(statement, *args)
    await connection.close()


async def test_a_frame_received_during_an_outage_is_delivered_in_order(database_url: str) -> None:
    name = database_of(database_url)
    for attempt in range(3):
        async with serve(
            database_url, echo.app, commit_retry_seconds=1.0, poll_interval=0.5
        ) as node:
            client = node.client
            ws = await client.ws_connect(f"/echo/s{attempt}")
            await ws.receive_str(timeout=5)
            await _admin(
                database_url,
                (f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',),
                ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name),
            )
            assert (await client.get(f"/echo/s{attempt}")).status == 503  # the object resets
            assert (await client.get(f"/echo/n{attempt}")).status == 503
            await ws.send_str("during")
            await _admin(database_url, (f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true',))

            async def healthy(client: TestClient = client) -> bool:
                return (await client.get("/healthz")).status == 200

            await eventually(healthy, 30, 0.3)
            assert (await client.get(f"/echo/s{attempt}")).status == 200
            await ws.send_str("after")
            got = []
            try:
                for _ in range(2):
                    got.append(await ws.receive_str(timeout=5))
            except TimeoutError:
                pass
            assert got == ["echo during", "echo after"], f"attempt {attempt}: {got}"
            await ws.close()
