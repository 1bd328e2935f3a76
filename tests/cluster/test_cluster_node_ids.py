"""Node ids: each run has its own by default; a live node's id is refused, a dead one's may
be taken again."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from tests.cli.process import child_env, durable
from tests.cluster.support import LEASE, ROOM, cluster_node
from tests.support import eventually

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


async def test_a_node_started_on_port_0_records_the_port_it_listens_on(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with cluster_node(database_url, "anyport") as node:
        port = urlsplit(node.url).port
        assert port  # chosen by the system: not 0
        address = await sql.fetchval("SELECT address FROM live_nodes WHERE node_id = 'anyport'")
        assert address == f"127.0.0.1:{port}"
        # The address answers: it is where the node serves.
        async with aiohttp.ClientSession() as http, http.get(f"http://{address}/healthz") as r:
            assert r.status == 200


async def test_a_starting_node_forgets_nodes_gone_longer_than_the_retention(
    database_url: str, sql: asyncpg.Connection
) -> None:
    # Two nodes that stopped two hours ago; one still owns an object (killed before it let
    # it go, say), so whoever claims it must see that its lease ended: that row stays.
    for name in ("gone", "owner"):
        await sql.execute(
            "INSERT INTO nodes (node_id, lease_timeout, heartbeat_at, stopped_at) VALUES "
            "($1, interval '5 seconds', now() - interval '2 hours', now() - interval '2 hours')",
            name,
        )
    await sql.execute(
        "INSERT INTO objects (object_id, binding, owner_node) VALUES ($1, 'ROOM', 'owner')",
        "a" * 64,
    )
    async with cluster_node(database_url, "new", "--node-retention", "3600") as node:

        async def pruned() -> bool:
            rows = await sql.fetch("SELECT node_id FROM nodes ORDER BY node_id")
            return [r["node_id"] for r in rows] == ["new", "owner"]

        await eventually(pruned, timeout=10)
        await node.wait_for(r"forgot 1 nodes gone for more than 3600 s: gone", 5)
