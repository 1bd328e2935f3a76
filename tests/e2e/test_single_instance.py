"""One live instance per object: a stale instance's writes are refused, never interleaved."""

from __future__ import annotations

import json

import asyncpg
import pytest

from service import Application, DurableObject, Response, WebSocketPair
from tests.support import eventually, serve


class Counter(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        n = (self.ctx.storage.kv.get("n") or 0) + 1
        self.ctx.storage.kv.put("n", n)
        ws.send(f"{message}:{n}")


async def test_a_live_owners_object_is_not_taken(database_url):
    """Another node carries a connection for an object a live node runs to that node (it
    holds the socket, the owner runs the object), and takes nothing: the owner epoch does
    not move."""
    app = Application({"C": Counter})
    async with (
        serve(database_url, app, node_id="node-a") as node_a,
        serve(database_url, app, node_id="node-b") as node_b,
    ):
        first = await node_a.client.ws_connect("/c/shared")
        await first.send_str("a1")
        assert await first.receive_str(timeout=5) == "a1:1"
        connection = await asyncpg.connect(database_url)
        try:
            before = await connection.fetchrow("SELECT owner_node, owner_epoch FROM objects")
            second = await node_b.client.ws_connect("/c/shared")
            await second.send_str("b1")
            assert await second.receive_str(timeout=5) == "b1:2"
            after = await connection.fetchrow("SELECT owner_node, owner_epoch FROM objects")
            held = await connection.fetch("SELECT node FROM presence ORDER BY connected_at")
        finally:
            await connection.close()
        assert tuple(before) == tuple(after) == ("node-a", before["owner_epoch"])
        assert [row["node"] for row in held] == ["node-a", "node-b"]
        await first.send_str("a2")
        assert await first.receive_str(timeout=5) == "a2:3"
        await first.close()
        await second.close()


async def test_a_stale_instance_is_fenced_off_and_rebuilt(database_url):
    """A node whose lease ran out without its knowing (paused, cut off) still holds an
    instance; once another node claimed the object, the stale instance's write is refused,
    shows its client nothing, and the message goes to the new owner, recorded once."""
    app = Application({"C": Counter})
    async with (
        serve(database_url, app, node_id="node-a", lease_timeout=60) as node_a,
        serve(database_url, app, node_id="node-b", lease_timeout=60) as node_b,
    ):
        first = await node_a.client.ws_connect("/c/shared")
        await first.send_str("a1")
        assert await first.receive_str(timeout=5) == "a1:1"

        connection = await asyncpg.connect(database_url)
        try:
            # Node A's heartbeats stop reaching the database (it goes on, unaware: its own
            # clock says its lease holds). For the others its lease has run out.
            await connection.execute(
                "UPDATE nodes SET heartbeat_at = now() - interval '61 seconds' "
                "WHERE node_id = 'node-a'"
            )
            # Node B takes the object over (its claim raises the fencing epoch).
            second = await node_b.client.ws_connect("/c/shared")
            await second.send_str("b1")
            assert await second.receive_str(timeout=5) == "b1:2"

            # Node A's instance believes n == 1. Its write is refused, it is rebuilt, finds
            # the object owned by a live node and routes the message there.
            await first.send_str("a2")

            async def recorded() -> bool:
                count = await connection.fetchval(
                    "SELECT count(*) FROM events WHERE type = 'storage_put'"
                )
                return bool(count == 3)

            await eventually(recorded, timeout=10)
            # The stale instance's reply ("a2:2") never left node A: the first frame is the
            # new owner's, sent to node A's client through the outbox.
            assert await first.receive_str(timeout=5) == "a2:3"
            with pytest.raises(TimeoutError):
                await first.receive_str(timeout=0.5)
            rows = await connection.fetch("SELECT seq, type, data FROM events ORDER BY seq")
            owner = await connection.fetchrow("SELECT owner_node, owner_epoch FROM objects")
        finally:
            await connection.close()
        await first.close()
        await second.close()

    values = [json.loads(r["data"])["entries"]["n"] for r in rows if r["type"] == "storage_put"]
    assert values == [1, 2, 3]
    texts = [json.loads(r["data"]).get("text") for r in rows if r["type"] == "message_received"]
    assert texts == ["a1", "b1", "a2"]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert owner["owner_node"] == "node-b"
