"""Waking hibernated objects goes through LISTEN/NOTIFY, with catch-up after a lost link."""

from __future__ import annotations

import asyncio

import asyncpg

from service import Application, DurableObject, Response, WebSocketPair
from tests.support import eventually, serve


class Echo(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        ws.send(f"echo:{message}")


def app() -> Application:
    return Application({"E": Echo})


async def test_a_notification_wakes_the_object_without_polling(database_url):
    # With a one-minute poll, only the NOTIFY can wake the object within the timeout.
    async with serve(database_url, app(), hibernate_after=0.2, poll_interval=60) as node:
        ws = await node.client.ws_connect("/e/one")
        await eventually(lambda: not node.runtime.activations, timeout=5)
        await ws.send_str("a")
        assert await ws.receive_str(timeout=3) == "echo:a"
        await ws.close()


async def test_the_listener_reconnects_after_its_backend_is_killed(database_url):
    async with serve(database_url, app(), hibernate_after=0.2, poll_interval=60) as node:
        listener = node.runtime.log._listener  # type: ignore[attr-defined]
        await asyncio.wait_for(listener.connected.wait(), 5)
        old_pid = listener.connection.get_server_pid()
        admin = await asyncpg.connect(database_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        finally:
            await admin.close()
        await eventually(
            lambda: (
                listener.connection is not None and listener.connection.get_server_pid() != old_pid
            ),
            timeout=5,
        )
        ws = await node.client.ws_connect("/e/two")
        await eventually(lambda: not node.runtime.activations, timeout=5)
        await ws.send_str("b")
        assert await ws.receive_str(timeout=3) == "echo:b"
        await ws.close()


async def test_work_notified_while_the_listener_was_down_is_caught_up(database_url):
    async with serve(database_url, app(), hibernate_after=0.2, poll_interval=60) as node:
        ws = await node.client.ws_connect("/e/three")
        await eventually(lambda: not node.runtime.activations, timeout=5)
        store = node.runtime.log
        await store._listener.close()  # type: ignore[attr-defined]
        await ws.send_str("c")
        # The inbox row is committed but its notification went nowhere.
        try:
            frame = await ws.receive_str(timeout=0.5)
        except TimeoutError:
            frame = None
        assert frame is None
        store.listen(node.runtime._on_wake, node.runtime._on_connect)  # type: ignore[attr-defined]
        assert await ws.receive_str(timeout=3) == "echo:c"
        await ws.close()
