"""During an outage, a request to a busy live object fails fast and says why (invariant 7).

A new object answers 503 at once (it cannot be claimed); a live object with commits in
flight must not make its callers wait out the commit retry window behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair
from tests.faults.chat_load import DatabaseFaults, serving
from tests.support import Node

pytestmark = pytest.mark.slow

#: The node's default commit retry window (the outage outlasts the measurement).
COMMIT_RETRY_SECONDS = 10.0
#: How long a 503 may take: "at once", with room for two busy cores.
FAIL_FAST = 1.0
#: How long the test waits for an answer at most: long enough to measure a request that
#: waits out two retry windows, one behind the other.
PATIENCE = 3 * COMMIT_RETRY_SECONDS
#: Seconds into the outage at which the requests come.
INTO_THE_OUTAGE = 1.0
#: Sockets keeping the object busy, and frames per second on each: a steady trickle, so
#: that a commit of the object is nearly always in flight (a heavier load only batches more
#: frames into each flush).
SOCKETS, RATE = 1, 5.0


class Counter(DurableObject):
    """Counts requests in storage and echoes frames, recording both (each one a commit)."""

    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server)
            return Response(status=101, websocket=client)
        count = (self.ctx.storage.kv.get("count") or 0) + 1
        self.ctx.storage.kv.put("count", count)
        return Response(str(count))

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        self.ctx.storage.kv.put("last", message)
        ws.send(f"echo {message!s}")


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, float]:
    """Status, body and seconds taken of a GET (a timeout is reported as status 0)."""
    started = time.monotonic()
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=PATIENCE)) as response:
            return response.status, await response.text(), time.monotonic() - started
    except TimeoutError:
        return 0, f"no answer within {PATIENCE:g} s", time.monotonic() - started


@contextlib.asynccontextmanager
async def _busy(
    node: Node, session: aiohttp.ClientSession, path: str
) -> AsyncIterator[list[aiohttp.ClientWebSocketResponse]]:
    """Frames to the object at ``path`` from ``SOCKETS`` sockets, steadily, until the end."""
    sockets = [await session.ws_connect(node.client.make_url(path)) for _ in range(SOCKETS)]
    for n, ws in enumerate(sockets):
        await ws.send_str(f"hello {n}")
        assert await ws.receive_str(timeout=10) == f"echo hello {n}"
    stop = asyncio.Event()

    async def send(ws: aiohttp.ClientWebSocketResponse) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
                await ws.send_str(f"m{number}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / RATE)

    async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for _ in ws:
            pass

    tasks = [asyncio.create_task(send(ws)) for ws in sockets]
    readers = [asyncio.create_task(drain(ws)) for ws in sockets]
    try:
        yield sockets
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers, return_exceptions=True)


@pytest.mark.timeout(90)
async def test_a_request_to_a_busy_live_object_fails_fast_during_an_outage(
    database_url: str,
) -> None:
    async with (
        serving(database_url, Application({"COUNTER": Counter}), shutdown_timeout=2.0) as node,
        DatabaseFaults(database_url) as faults,
        aiohttp.ClientSession() as session,
    ):
        assert node.settings.commit_retry_seconds == COMMIT_RETRY_SECONDS
        busy_url = str(node.client.make_url("/counter/busy"))
        async with _busy(node, session, "/counter/busy") as sockets:
            assert (await _get(session, busy_url))[:2] == (200, "1")

            await faults.refuse()
            health = await _get(session, str(node.client.make_url("/healthz")))
            assert health[0] == 503, health
            # The object is busy: a frame's commit is in flight, retrying, when the requests
            # come one second into the outage (the steady sender alone leaves this to chance).
            await sockets[0].send_str("during the outage")
            await asyncio.sleep(INTO_THE_OUTAGE)
            busy, fresh = await asyncio.gather(
                _get(session, busy_url),
                _get(session, str(node.client.make_url("/counter/newcomer"))),
            )
            figures = (
                f"busy live object: {busy[0]} after {busy[2]:.2f} s ({busy[1]!r}); "
                f"new object: {fresh[0]} after {fresh[2]:.2f} s ({fresh[1]!r})"
            )
            print(figures)
            await faults.allow()

            async def answered(url: str) -> bool:
                return (await _get(session, url))[0] == 200

            deadline = time.monotonic() + PATIENCE
            while not await answered(busy_url) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # polling the node's recovery
            recovered = await _get(session, busy_url)

    for name, (status, body, took) in (("busy live object", busy), ("new object", fresh)):
        assert status == 503, f"{name}: expected a 503 during the outage; {figures}"
        assert "database is unavailable" in body.lower(), f"{name}: the 503 says no why; {figures}"
        assert took < FAIL_FAST, f"{name}: the 503 took {took:.2f} s (at most {FAIL_FAST} s); " + (
            figures
        )
    assert recovered[0] == 200, f"the busy object did not recover after the outage: {recovered}"
