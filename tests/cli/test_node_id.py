"""One live node per node id: a second node started with the id of a running one refuses to
start, says why and how to choose another, and touches nothing of the first one's."""

from __future__ import annotations

import aiohttp
import asyncpg

from tests.cli.process import ECHO, child_env, durable


async def test_a_second_node_with_a_live_nodes_id_refuses_to_start(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with durable("serve", ECHO, "--port", "0", "--node-id", "twin", env=env) as first:
        url = await first.serving()
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{url}/echo/room")
            await ws.receive_str(timeout=10)
            async with durable("serve", ECHO, "--port", "0", "--node-id", "twin", env=env) as twin:
                assert await twin.exited(60) == 1
            assert "node id 'twin' is held by a running node" in twin.output
            assert "--node-id" in twin.output and "DURABLE_NODE_ID" in twin.output
            assert "Traceback" not in twin.output
            # The first node's socket is still open, in the log and on the wire.
            sql = await asyncpg.connect(database_url)
            try:
                open_sockets = await sql.fetchval(
                    "SELECT count(*) FROM websockets WHERE closed_at IS NULL"
                )
            finally:
                await sql.close()
            assert open_sockets == 1
            await ws.send_str("still here")
            assert await ws.receive_str(timeout=10) == "echo still here"
            # Another id starts beside it.
            async with durable(
                "serve", ECHO, "--port", "0", "--node-id", "other", env=env
            ) as other:
                await other.serving()
                assert await other.stop() == 0
            await ws.close()
        assert await first.stop() == 0
    # Once the first node has stopped, its id is free again.
    async with durable("serve", ECHO, "--port", "0", "--node-id", "twin", env=env) as again:
        await again.serving()
        assert await again.stop() == 0
