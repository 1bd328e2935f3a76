"""One live instance per object: a stale instance's writes are refused, never interleaved."""

from __future__ import annotations

import json

import asyncpg

from service import Application, DurableObject, Response, WebSocketPair
from tests.support import serve


class Counter(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        n = (self.ctx.storage.kv.get("n") or 0) + 1
        self.ctx.storage.kv.put("n", n)
        ws.send(f"{message}:{n}")


async def test_a_stale_instance_is_fenced_off_and_rebuilt(database_url):
    app = Application({"C": Counter})
    async with (
        serve(database_url, app, node_id="node-a") as node_a,
        serve(database_url, app, node_id="node-b") as node_b,
    ):
        first = await node_a.client.ws_connect("/c/shared")
        await first.send_str("a1")
        assert await first.receive_str(timeout=5) == "a1:1"

        # Node B takes the object over (its claim raises the fencing epoch).
        second = await node_b.client.ws_connect("/c/shared")
        await second.send_str("b1")
        assert await second.receive_str(timeout=5) == "b1:2"

        # Node A still holds an instance that believes n == 1. Its write is refused; it is
        # rebuilt from the log and the message is handled again on the true state.
        await first.send_str("a2")
        assert await first.receive_str(timeout=10) == "a2:3"
        await first.close()
        await second.close()

    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT seq, data FROM events WHERE type = 'storage_put' ORDER BY seq"
        )
        values = [json.loads(r["data"])["entries"]["n"] for r in rows]
        assert values == [1, 2, 3]
        seqs = await connection.fetch("SELECT seq FROM events ORDER BY seq")
        assert [r["seq"] for r in seqs] == list(range(1, len(seqs) + 1))
    finally:
        await connection.close()
