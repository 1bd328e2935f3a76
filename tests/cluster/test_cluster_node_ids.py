"""Node ids: each run has its own by default; a live node's id is refused, a dead one's may
be taken again."""

from __future__ import annotations

import asyncpg
import pytest

from tests.cli.process import child_env, durable
from tests.cluster.support import LEASE, ROOM, cluster_node

pytestmark = pytest.mark.slow


async def test_default_ids_differ_and_both_nodes_are_live(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, None) as one,
        cluster_node(database_url, None) as two,
    ):
        ids = [(await node.wait_for(r"as node (\S+) ", 5)).group(1) for node in (one, two)]
        assert ids[0] != ids[1]
        live = await sql.fetch("SELECT node_id, address FROM live_nodes ORDER BY node_id")
        assert sorted(ids) == [r["node_id"] for r in live]
        assert all(r["address"].startswith("127.0.0.1:") for r in live)
        assert await one.stop() == 0
        stopped = await sql.fetchval(
            "SELECT stopped_at IS NOT NULL FROM nodes WHERE node_id = $1", ids[0]
        )
        assert stopped
        assert await sql.fetchval("SELECT count(*) FROM live_nodes") == 1


async def test_a_live_nodes_id_is_refused_and_a_dead_ones_is_taken_again(
    database_url: str, sql: asyncpg.Connection
) -> None:
    env = child_env(database_url=database_url)
    args = ("serve", ROOM, "--port", "0", "--node-id", "solo")
    # A long lease, so that the killed node stays live while the second one starts.
    async with cluster_node(database_url, "solo", "--lease-timeout", "60") as first:
        first.process.kill()
        await first.exited(10)
    async with durable(*args, "--lease-timeout", str(LEASE), env=env) as twin:
        assert await twin.exited(60) == 1
    assert "node id 'solo' is held by a running node on this database" in twin.output
    assert "last heartbeat" in twin.output and "--node-id" in twin.output
    assert "Traceback" not in twin.output
    # The lease of the killed node runs out (time passes, as the database sees it).
    await sql.execute(
        "UPDATE nodes SET heartbeat_at = now() - interval '61 seconds' WHERE node_id = 'solo'"
    )
    async with durable(*args, "--lease-timeout", str(LEASE), env=env) as again:
        await again.serving()
        live = await sql.fetchval("SELECT count(*) FROM live_nodes WHERE node_id = 'solo'")
        assert live == 1
        assert await again.stop() == 0
