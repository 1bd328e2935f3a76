"""Wakes blocked in the database hold up nobody else (invariant 10, for objects).

Another session holds the ``objects`` rows of 30 hibernated objects locked (``SELECT ... FOR
UPDATE`` in an open transaction), and each of them then gets a frame or a request: their
wakes cannot claim them. The node's pool has 10 connections. ``/healthz`` and a live object
that has nothing to do with them must still answer at once; and once the lock goes, the
blocked work is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

import aiohttp
import asyncpg
import pytest

from service import (
    Application,
    DurableObject,
    MessageEvent,
    Request,
    Response,
    WebSocket,
    WebSocketPair,
)
from tests.faults.chat_load import serving
from tests.support import eventually

pytestmark = pytest.mark.slow

POOL_SIZE = 10
#: Hibernated objects woken by a frame, and by a request, while their rows are locked.
BY_FRAME, BY_REQUEST = 15, 15
#: How long /healthz and the unrelated object may take: "at once", with room for two busy
#: cores (wakes that keep pool connections while they wait make it tens of seconds).
PROMPT = 1.0
#: How long the test waits for any answer at most.
PATIENCE = 40.0


class Echo(DurableObject):
    """Echoes frames; counts requests. ``?standard=1`` sockets pin it in memory."""

    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            count = (self.ctx.storage.kv.get("count") or 0) + 1
            self.ctx.storage.kv.put("count", count)
            return Response(str(count))
        client, server = WebSocketPair()
        if request.query.get("standard"):
            server.accept()  # a standard socket: the object cannot hibernate

            def echo(event: MessageEvent) -> None:
                server.send(f"echo {event.data!s}")

            server.add_event_listener("message", echo)
        else:
            self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        ws.send(f"echo {message!s}")


async def _timed(awaitable: Awaitable[str]) -> tuple[str, float]:
    """What ``awaitable`` gave (or why it gave nothing) and how long it took."""
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(awaitable, PATIENCE)
    except TimeoutError:
        result = f"nothing within {PATIENCE:g} s"
    except (aiohttp.ClientError, ConnectionError) as error:
        result = f"failed: {error!r}"
    return result, time.monotonic() - started


async def _text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return f"{response.status} {await response.text()}"


async def _echo(ws: aiohttp.ClientWebSocketResponse, text: str) -> str:
    await ws.send_str(text)
    return await ws.receive_str()


async def _lock_waiters(observer: asyncpg.Connection, database: str) -> int:
    """Sessions of the test's database waiting for a lock (the blocked wakes)."""
    waiting: int = await observer.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        database,
    )
    return waiting


@pytest.mark.timeout(120)
async def test_blocked_wakes_do_not_stall_the_node(database_url: str) -> None:
    app = Application({"ECHO": Echo})
    observer = await asyncpg.connect(database_url)
    locker = await asyncpg.connect(database_url)
    try:
        async with (
            serving(
                database_url,
                app,
                pool_size=POOL_SIZE,
                hibernate_after=0.5,
                shutdown_timeout=2.0,
            ) as node,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        ):
            url = node.client.make_url
            database = await observer.fetchval("SELECT current_database()")
            live = await session.ws_connect(url("/echo/live?standard=1"))
            assert await _echo(live, "first") == "echo first"
            framed = [await session.ws_connect(url(f"/echo/f{n}")) for n in range(BY_FRAME)]
            for ws in framed:
                assert await _echo(ws, "first") == "echo first"
            requested = [f"q{n}" for n in range(BY_REQUEST)]
            for name in requested:
                assert await _text(session, str(url(f"/echo/{name}"))) == "200 1"
            names = [f"f{n}" for n in range(BY_FRAME)] + requested
            ids = [
                r["object_id"]
                for r in await observer.fetch(
                    "SELECT object_id FROM objects WHERE name = ANY($1::text[])", names
                )
            ]
            assert len(ids) == BY_FRAME + BY_REQUEST

            async def hibernated() -> bool:
                released = await observer.fetchval(
                    "SELECT count(*) FROM objects"
                    " WHERE object_id = ANY($1::text[]) AND owner_node IS NULL",
                    ids,
                )
                return released == len(ids) and not set(ids) & set(node.runtime.activations)

            await eventually(hibernated, timeout=15, interval=0.1)
            assert len(node.runtime.activations) == 1  # only the live one

            transaction = locker.transaction()
            await transaction.start()
            await locker.execute(
                "SELECT 1 FROM objects WHERE object_id = ANY($1::text[]) FOR UPDATE", ids
            )
            woken = time.monotonic()
            for ws in framed:
                await ws.send_str("wake")
            requests = [
                asyncio.create_task(_timed(_text(session, str(url(f"/echo/{name}")))))
                for name in requested
            ]
            # Measure once the wakes are stuck: as many lock waiters as the pool has
            # connections (or all there will be, if the node keeps some back).
            most = 0
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and most < POOL_SIZE:
                most = max(most, await _lock_waiters(observer, database))
                await asyncio.sleep(0.02)  # polling pg_stat_activity
            stuck = time.monotonic() - woken
            (health, health_took), (echo, echo_took) = await asyncio.gather(
                _timed(_text(session, str(url("/healthz")))), _timed(_echo(live, "meanwhile"))
            )
            figures = (
                f"with {most} wakes waiting for the lock ({stuck:.1f} s after the frames and "
                f"requests were sent): /healthz {health_took:.2f} s ({health!r}), "
                f"the unrelated live object's echo {echo_took:.2f} s ({echo!r})"
            )
            print(figures)

            await transaction.rollback()
            released = time.monotonic()
            wakes = await asyncio.gather(*(_timed(ws.receive_str()) for ws in framed), *requests)
            after = time.monotonic() - released
            done = f"after the lock was released ({after:.1f} s): " + ", ".join(
                f"{answer!r}" for answer, _ in wakes
            )
            print(done)
            for ws in [live, *framed]:
                await ws.close()
    finally:
        with contextlib.suppress(Exception):
            await locker.close()
        await observer.close()

    assert health.startswith("200 ") and health_took < PROMPT, figures
    assert echo == "echo meanwhile" and echo_took < PROMPT, figures
    assert all(answer == "echo wake" for answer, _ in wakes[:BY_FRAME]), done
    assert all(answer.startswith(("200 ", "503 ")) for answer, _ in wakes[BY_FRAME:]), done
