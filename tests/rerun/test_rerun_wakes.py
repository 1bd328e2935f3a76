"""Events no handler writes, in a rerun: a fork's first event and the restore a wake appends
are taken as given, and the object is constructed again after them, as the live one was.

The counter keeps its count in memory, read from storage by the constructor: a rerun that
did not construct it again after a fork or a restore would count on from the wrong number
and diverge at the next frame."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair
from service.history_root import open_history
from service.ports.history import HistoryService
from service.rerun.engine import rerun
from service.rerun.report import RerunError
from service.settings import Settings
from tests.support import serve


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[HistoryService]:
    async with open_history(Settings(database_url=database_url)) as service:
        yield service


class Counter(DurableObject):
    """Counts frames in memory; ``mark`` answers a bookmark, ``restore:B`` restores to one."""

    def __init__(self, ctx, env) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx, env)
        self.count = ctx.storage.kv.get("count") or 0

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = str(message)
        if text == "mark":
            ws.send(await self.ctx.storage.get_current_bookmark())
        elif text.startswith("restore:"):
            await self.ctx.storage.on_next_session_restore_bookmark(text.removeprefix("restore:"))
            self.ctx.abort()
        else:
            self.count += 1
            self.ctx.storage.kv.put("count", self.count)
            ws.send(str(self.count))


APP = Application({"COUNTER": Counter})


async def count_to(ws, numbers: range) -> None:  # type: ignore[no-untyped-def]
    for n in numbers:
        await ws.send_str("tick")
        assert await ws.receive_str(timeout=5) == str(n)


async def test_a_fork_reruns_from_its_first_event_without_divergence(
    database_url: str, history: HistoryService
) -> None:
    async with serve(database_url, APP) as node:
        ws = await node.client.ws_connect("/counter/source")
        await count_to(ws, range(1, 6))
        await ws.close()
    source = await history.find("COUNTER/source")
    # The state after the third frame: count 3.
    page = await history.events("COUNTER/source", types=["storage_put"])
    at = page.events[2].seq
    await history.fork("COUNTER/source", at=at, as_name="copy", by="test")
    async with serve(database_url, APP) as node:
        ws = await node.client.ws_connect("/counter/copy")
        await count_to(ws, range(4, 7))
        await ws.close()
    report = await rerun(history, APP, "COUNTER/copy")
    assert report.divergence is None, report.divergence
    # The upgrade, three frames and the close; the fork's event is taken as given.
    assert report.agreed == 5
    assert report.first_inbound == 2
    assert source.last_seq > at


async def test_a_restore_reruns_through_the_wake_that_applied_it(
    database_url: str, history: HistoryService
) -> None:
    async with serve(database_url, APP) as node:
        ws = await node.client.ws_connect("/counter/undo")
        await count_to(ws, range(1, 3))
        await ws.send_str("mark")
        bookmark = await ws.receive_str(timeout=5)
        await count_to(ws, range(3, 6))
        # The socket stays open across the abort; its next frame wakes the object.
        await ws.send_str(f"restore:{bookmark}")
        await count_to(ws, range(3, 5))
        await ws.close()
    page = await history.events("COUNTER/undo", types=["storage_restored"])
    assert len(page.events) == 1
    restored = page.events[0].seq
    report = await rerun(history, APP, "COUNTER/undo")
    assert report.divergence is None, report.divergence
    assert report.last_inbound > restored
    # A rerun may also start at the restore: it takes it as given, as it does at seq 1.
    from_restore = await rerun(history, APP, "COUNTER/undo", start=restored)
    assert from_restore.divergence is None, from_restore.divergence
    assert from_restore.first_inbound > restored


async def test_a_constructor_that_differs_after_a_restore_is_where_it_diverges(
    database_url: str, history: HistoryService
) -> None:
    async with serve(database_url, APP) as node:
        ws = await node.client.ws_connect("/counter/changed")
        await count_to(ws, range(1, 3))
        await ws.send_str("mark")
        bookmark = await ws.receive_str(timeout=5)
        await count_to(ws, range(3, 4))
        await ws.send_str(f"restore:{bookmark}")
        await count_to(ws, range(3, 4))
        await ws.close()
    restored = (await history.events("COUNTER/changed", types=["storage_restored"])).events[0]

    class Stamping(Counter):
        """Today's code writes at every construction, which the recorded wakes did not."""

        def __init__(self, ctx, env) -> None:  # type: ignore[no-untyped-def]
            super().__init__(ctx, env)
            ctx.storage.kv.put("constructed", True)

    changed = Application({"COUNTER": Stamping})
    report = await rerun(history, changed, "COUNTER/changed", start=restored.seq)
    divergence = report.divergence
    assert divergence is not None
    assert divergence.inbound is None  # the constructor run by the wake
    assert divergence.first_seq == restored.seq + 1
    assert "constructed" in str(divergence.rerun[0])


async def test_a_rerun_cannot_start_inside_a_turn_after_a_wake(
    database_url: str, history: HistoryService
) -> None:
    async with serve(database_url, APP) as node:
        ws = await node.client.ws_connect("/counter/inside")
        await count_to(ws, range(1, 3))
        await ws.close()
    puts = await history.events("COUNTER/inside", types=["storage_put"])
    with pytest.raises(RerunError, match="not an inbound event"):
        await rerun(history, APP, "COUNTER/inside", start=puts.events[0].seq)
