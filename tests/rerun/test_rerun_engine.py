"""The rerun engine on histories a real node recorded: what agrees although it differs on every
run (ids, clock readings, alarm retries), and where a divergence is placed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair
from service.history_root import open_history
from service.ports.history import HistoryService
from service.rerun.engine import rerun
from service.settings import Settings
from tests.support import eventually, serve


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[HistoryService]:
    async with open_history(Settings(database_url=database_url)) as service:
        yield service


class Keeper(DurableObject):
    """Keeps ids that differ on every run: its sockets', random ones, new objects'."""

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        self.ctx.storage.kv.put(f"socket:{server.id}", {"since": time.time()})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        self.ctx.storage.kv.put(
            f"message:{uuid.uuid4()}",
            {"from": ws.id, "peer": str(self.env.KEEPER.new_unique_id()), "text": message},
        )
        ws.send("kept")

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.ctx.storage.kv.delete(f"socket:{ws.id}")


async def test_ids_and_clock_readings_agree_although_they_differ(
    database_url: str, history: HistoryService
) -> None:
    app = Application({"KEEPER": Keeper})
    async with serve(database_url, app) as node:
        sockets = [await node.client.ws_connect("/keeper/k") for _ in range(2)]
        for n, ws in enumerate(sockets * 2):
            await ws.send_str(f"m{n}")
            assert await ws.receive_str(timeout=5) == "kept"
        await sockets[0].close()
    report = await rerun(history, app, "KEEPER/k")
    assert report.divergence is None, report.divergence
    # Two upgrades, four frames, a close, and the other socket's close when the node stopped.
    assert report.agreed == 8


class Reminder(DurableObject):
    """A frame sets the alarm; the alarm's run fails ``failures`` times, then writes."""

    failures: ClassVar[int] = 0

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        await self.ctx.storage.set_alarm(time.time() * 1000 + 50)

    async def alarm(self, alarm_info: Any = None) -> None:
        self.ctx.storage.kv.put("ran", {"retry": alarm_info.retry_count, "at": time.time()})
        if Reminder.failures > 0:
            Reminder.failures -= 1
            raise RuntimeError("alarm failed on purpose")


async def test_an_alarm_retried_after_a_failure_agrees(
    database_url: str, history: HistoryService
) -> None:
    app = Application({"REMIND": Reminder})
    Reminder.failures = 1
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/remind/r")
        await ws.send_str("remind me")

        async def retried() -> bool:
            page = await history.events("REMIND/r", types=["storage_put"])
            return bool(page.events)

        await eventually(retried, timeout=10, interval=0.1)
    Reminder.failures = 1  # the code fails its first run again, as it did live
    report = await rerun(history, app, "REMIND/r")
    assert report.divergence is None, report.divergence
    # The upgrade, the frame, the failed run, the retry, the close when the node stopped.
    assert report.agreed == 5


class Background(DurableObject):
    """Writes from a task it hands to ``wait_until``, outside any inbound event's turn."""

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        self.ctx.storage.kv.put("last", message)
        ws.send("ok")
        if message == "later":
            self.ctx.wait_until(self.later())

    async def later(self) -> None:
        await asyncio.sleep(0.05)
        self.ctx.storage.kv.put("later", True)


async def test_work_outside_inbound_events_shows_after_the_turn_before_it(
    database_url: str, history: HistoryService
) -> None:
    app = Application({"BG": Background})
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/bg/b")
        for text in ("now", "later"):
            await ws.send_str(text)
            assert await ws.receive_str(timeout=5) == "ok"
        await asyncio.sleep(0.3)
        await ws.send_str("after")
        assert await ws.receive_str(timeout=5) == "ok"
    report = await rerun(history, app, "BG/b")
    divergence = report.divergence
    assert divergence is not None and divergence.inbound is not None
    later = next(e for e in divergence.recorded if e.event.type == "message_received")
    assert divergence.inbound.seq == later.seq
    assert "outside any inbound event" in divergence.reason
    assert "storage_put" in divergence.reason
    assert [e.event.type for e in divergence.recorded] == [
        "message_received",
        "storage_put",
        "storage_put",
    ]
    assert [e.type for e in divergence.rerun] == ["message_received", "storage_put"]
    assert any("wait_until" in note for note in report.notes)
    assert report.agreed == 2  # the upgrade and "now"


class Farewell(DurableObject):
    """Notes who left, in its close handler."""

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        self.ctx.storage.kv.put("said", message)
        ws.send("noted")

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.ctx.storage.kv.put("left", code)


class Silent(Farewell):
    async def websocket_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        pass


class Raising(Farewell):
    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        raise RuntimeError("the new code fails here")


async def test_a_close_or_a_frame_whose_handler_records_less_is_where_it_diverges(
    database_url: str, history: HistoryService
) -> None:
    async with serve(database_url, Application({"BYE": Farewell})) as node:
        ws = await node.client.ws_connect("/bye/f")
        await ws.send_str("hello")
        # The reply leaves once the frame's turn is committed: the close's is another commit.
        assert await ws.receive_str(timeout=5) == "noted"
        await ws.close()
        (activation,) = node.runtime.activations.values()
        await eventually(lambda: not activation.state.sockets, timeout=5)

    silent = await rerun(history, Application({"BYE": Silent}), "BYE/f")
    assert silent.divergence is not None and silent.divergence.inbound is not None
    assert silent.divergence.inbound.event.type == "websocket_closed"
    assert "1 more event(s) before this turn's last 1" in silent.divergence.reason
    assert "(this handler's)" in silent.divergence.reason
    assert silent.agreed == 2

    raising = await rerun(history, Application({"BYE": Raising}), "BYE/f")
    assert raising.divergence is not None and raising.divergence.inbound is not None
    assert raising.divergence.inbound.event.type == "message_received"
    assert "the log recorded more after this turn: storage_put" in raising.divergence.reason
    assert [e.type for e in raising.divergence.rerun] == ["message_received"]
    assert raising.agreed == 1


class Upload(DurableObject):
    """Stores the size of what is posted to it."""

    async def fetch(self, request: Request) -> Response:
        self.ctx.storage.kv.put("size", len(await request.bytes()))
        return Response("stored")


async def test_a_request_body_past_the_limit_reaches_the_rerun_cut(
    database_url: str, history: HistoryService
) -> None:
    app = Application({"UP": Upload})
    async with serve(database_url, app, max_message_bytes=1024) as node:
        for size in (10, 3000):
            assert (await node.client.post("/up/u", data=b"x" * size)).status == 200
    report = await rerun(history, app, "UP/u")
    # The small body agrees; the log kept only the beginning of the large one.
    divergence = report.divergence
    assert divergence is not None and divergence.inbound is not None
    assert divergence.inbound.event.type == "request_received"
    assert divergence.reason == "storage_put.entries.size: the log has 3000, the rerun 1024"
    assert report.agreed == 1
    assert any(f"seq {divergence.inbound.seq}" in note for note in report.notes)
