"""Many objects and sockets at once: every reply arrives, seq stays gapless, replay = live."""

from __future__ import annotations

import asyncio

import asyncpg

from service import Application, DurableObject, Response, WebSocketPair
from service.events import snapshot
from tests.support import replay, serve

OBJECTS = 12
SOCKETS_PER_OBJECT = 4
MESSAGES = 15


class Tally(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        key = f"from:{message.split(':')[0]}"
        self.ctx.storage.kv.put(key, (self.ctx.storage.kv.get(key) or 0) + 1)
        ws.send(f"ack:{message}")


async def test_many_objects_and_sockets(database_url):
    async with serve(database_url, Application({"T": Tally}), snapshot_every=25) as node:

        async def client(room: int, index: int) -> list[str]:
            ws = await node.client.ws_connect(f"/t/room{room}")
            for n in range(MESSAGES):
                await ws.send_str(f"c{index}:{n}")
            replies = [await ws.receive_str(timeout=10) for _ in range(MESSAGES)]
            await ws.close()
            return replies

        results = await asyncio.gather(
            *(client(r, i) for r in range(OBJECTS) for i in range(SOCKETS_PER_OBJECT))
        )
        for index, replies in enumerate(results):
            mine = index % SOCKETS_PER_OBJECT
            # Per-socket order is preserved end to end.
            assert replies == [f"ack:c{mine}:{n}" for n in range(MESSAGES)]

        for activation in list(node.runtime.activations.values()):
            await activation.sync()
            live = snapshot.comparable(activation.state)
            assert snapshot.comparable(await replay(database_url, activation.key)) == live
            assert live["storage"] == {f"from:c{i}": MESSAGES for i in range(SOCKETS_PER_OBJECT)}

    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT object_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi "
            "FROM events GROUP BY object_id"
        )
        assert len(rows) == OBJECTS
        for row in rows:
            assert row["lo"] == 1 and row["hi"] == row["n"]  # gapless
        catalog = await connection.fetch("SELECT object_id, last_seq FROM objects")
        assert {r["object_id"]: r["last_seq"] for r in catalog} == {
            r["object_id"]: r["hi"] for r in rows
        }
        open_sockets = await connection.fetchval("SELECT count(*) FROM presence")
        assert open_sockets == 0
        closed = await connection.fetchval(
            "SELECT count(*) FROM websockets WHERE closed_at IS NOT NULL AND was_clean"
        )
        assert closed == OBJECTS * SOCKETS_PER_OBJECT
    finally:
        await connection.close()
