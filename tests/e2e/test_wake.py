"""Waking objects: a frame on this node wakes its hibernated object here; work another node
hands over through the inbox reaches the object this node runs through LISTEN/NOTIFY, with
catch-up after a lost link."""

from __future__ import annotations

import asyncio

import asyncpg

from service import Application, DurableObject, Response, WebSocketPair
from service.gateway import keys
from service.ports.records import InboxItem
from service.store.event_store import EventStore
from tests.support import Node, eventually, serve


class Echo(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        ws.send(f"echo:{message}")


def app() -> Application:
    return Application({"E": Echo})


async def _hibernated_socket(node: Node, name: str):
    """Connect to object ``name``, wait until it hibernates; (ws, object id, socket id)."""
    ws = await node.client.ws_connect(f"/e/{name}")
    await eventually(lambda: len(node.runtime.activations) == 1, timeout=5)
    (object_id,) = node.runtime.activations
    await eventually(lambda: not node.runtime.activations, timeout=5)
    (socket_id,) = node.webapp[keys.REGISTRY].entries
    return ws, object_id, socket_id


async def _live_socket(node: Node, name: str):
    """Connect to object ``name``, which stays live here (this node owns it)."""
    ws = await node.client.ws_connect(f"/e/{name}")
    await eventually(lambda: len(node.runtime.activations) == 1, timeout=5)
    (object_id,) = node.runtime.activations
    (socket_id,) = node.webapp[keys.REGISTRY].entries
    return ws, object_id, socket_id


async def _hand_over(database_url: str, object_id: str, socket_id: str, text: str) -> None:
    """Write a frame to the object's inbox as another node would (one commit, one NOTIFY to
    the object's owner)."""
    other = EventStore(database_url, "other-node")
    await other.open()
    try:
        await other.enqueue(InboxItem(object_id, "message", socket_id, {"text": text}))
    finally:
        await other.close()


async def _inbox_rows(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM inbox")
        return count
    finally:
        await connection.close()


async def test_a_frame_wakes_its_hibernated_object_on_this_node(database_url):
    # No listener and a one-minute poll: only the local wake can answer in time.
    async with serve(database_url, app(), hibernate_after=0.2, poll_interval=60) as node:
        ws, _, _ = await _hibernated_socket(node, "local")
        await node.runtime.event_log._listener.close()  # type: ignore[attr-defined]
        await ws.send_str("a")
        assert await ws.receive_str(timeout=3) == "echo:a"
        assert await _inbox_rows(database_url) == 0
        await ws.close()


async def test_a_notification_reaches_the_owner_without_polling(database_url):
    # With a one-minute poll, only the NOTIFY can reach the object within the timeout.
    async with serve(database_url, app(), poll_interval=60) as node:
        ws, object_id, socket_id = await _live_socket(node, "one")
        await _hand_over(database_url, object_id, socket_id, "a")
        assert await ws.receive_str(timeout=3) == "echo:a"

        async def consumed() -> bool:
            return await _inbox_rows(database_url) == 0

        await eventually(consumed, timeout=3)
        await ws.close()


async def test_the_listener_reconnects_after_its_backend_is_killed(database_url):
    async with serve(database_url, app(), poll_interval=60) as node:
        listener = node.runtime.event_log._listener  # type: ignore[attr-defined]
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
        ws, object_id, socket_id = await _live_socket(node, "two")
        await _hand_over(database_url, object_id, socket_id, "b")
        assert await ws.receive_str(timeout=3) == "echo:b"
        await ws.close()


async def test_work_notified_while_the_listener_was_down_is_caught_up(database_url):
    async with serve(database_url, app(), poll_interval=60) as node:
        ws, object_id, socket_id = await _live_socket(node, "three")
        store = node.runtime.event_log
        await store._listener.close()  # type: ignore[attr-defined]
        await _hand_over(database_url, object_id, socket_id, "c")
        # The inbox row is committed but its notification went nowhere.
        try:
            frame = await ws.receive_str(timeout=0.5)
        except TimeoutError:
            frame = None
        assert frame is None
        store.listen(node.runtime._on_wake, node.runtime._on_connect)  # type: ignore[attr-defined]
        assert await ws.receive_str(timeout=3) == "echo:c"
        await ws.close()
