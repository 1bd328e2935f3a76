"""A database outage: nothing acknowledged is lost, and work sent meanwhile is done later."""

from __future__ import annotations

import asyncio

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


async def _block(admin: asyncpg.Connection, name: str, allow: bool) -> None:
    """Refuse (or allow again) connections to the test database, dropping the open ones."""
    await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
    if not allow:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )


async def test_messages_sent_during_an_outage_are_handled_when_it_ends(database_url):
    observer = await asyncpg.connect(database_url)
    name = await observer.fetchval("SELECT current_database()")
    await observer.close()
    admin = await asyncpg.connect(database_url, database="postgres")
    try:
        async with serve(
            database_url, Application({"C": Counter}), commit_retry_seconds=0.5
        ) as node:
            ws = await node.client.ws_connect("/c/outage")
            await ws.send_str("before")
            assert await ws.receive_str(timeout=5) == "before:1"

            await _block(admin, name, allow=False)
            await ws.send_str("during")
            try:
                early = await ws.receive_str(timeout=1.5)
            except TimeoutError:
                early = None
            assert early is None  # nothing is shown before it is committed
            health = await node.client.get("/healthz")
            assert health.status == 503

            await _block(admin, name, allow=True)
            assert await ws.receive_str(timeout=10) == "during:2"
            await ws.send_str("after")
            assert await ws.receive_str(timeout=5) == "after:3"
            assert (await node.client.get("/healthz")).status == 200
            await ws.close()
        await _block(admin, name, allow=True)
        observer = await asyncpg.connect(database_url)
        rows = await observer.fetch(
            "SELECT data->>'text' AS text FROM events WHERE type = 'message_received' ORDER BY seq"
        )
        await observer.close()
        assert [r["text"] for r in rows] == ["before", "during", "after"]
    finally:
        await _block(admin, name, allow=True)
        await admin.close()
    await asyncio.sleep(0)
