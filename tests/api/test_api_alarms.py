"""Alarms: argument checks, firing, retries after a failure, cancelling, waking a sleeper."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from service import Application, DurableObject, Response
from tests.support import eventually, replay, serve

NEEDS_HANDLER = "Your Durable Object class must have an alarm() handler in order to call setAlarm()"
NOT_POSITIVE = "setAlarm() cannot be called with an alarm time <= 0"


def raises(kind: type[BaseException], message: str) -> Any:
    return pytest.raises(kind, match=f"^{re.escape(message)}$")


def now_ms() -> int:
    return int(time.time() * 1000)


class Clock(DurableObject):
    """``?in=ms`` sets the alarm that far ahead; ``?delete`` deletes it; GET reports it."""

    calls: ClassVar[list[dict[str, Any]]] = []
    failures_left: ClassVar[int] = 0
    rearm_once: ClassVar[bool] = False

    async def fetch(self, request):
        storage = self.ctx.storage
        if "in" in request.query:
            await storage.set_alarm(now_ms() + int(request.query["in"]))
        if "delete" in request.query:
            await storage.delete_alarm()
        return Response.json({"alarm": await storage.get_alarm(), "calls": len(Clock.calls)})

    async def alarm(self, alarm_info=None):
        Clock.calls.append(
            {
                "alarm": await self.ctx.storage.get_alarm(),
                "retry_count": alarm_info.retry_count,
                "is_retry": alarm_info.is_retry,
                "name": self.ctx.id.name,
                "at": now_ms(),
            }
        )
        await self.ctx.storage.put("fired", len(Clock.calls))
        if Clock.rearm_once:
            Clock.rearm_once = False
            await self.ctx.storage.set_alarm(now_ms() + 50)
        if Clock.failures_left > 0:
            Clock.failures_left -= 1
            raise RuntimeError("alarm failed on purpose")


class NoAlarm(DurableObject):
    """Has no alarm() handler."""

    async def fetch(self, request):
        try:
            await self.ctx.storage.set_alarm(now_ms() + 60_000)
        except TypeError as error:
            return Response(str(error))
        return Response("accepted", status=500)


@pytest.fixture(autouse=True)
def _reset():
    Clock.calls.clear()
    Clock.failures_left = 0
    Clock.rearm_once = False


def app() -> Application:
    return Application({"CLOCK": Clock, "NOALARM": NoAlarm})


async def clock(client, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/clock/c?{query}")
    assert response.status == 200, await response.text()
    return await response.json()


async def test_set_alarm_arguments(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        for bad in (0, -1, -1.5, 0.4, datetime(1970, 1, 1, tzinfo=UTC)):
            with raises(TypeError, NOT_POSITIVE):
                await storage.set_alarm(bad)
        with pytest.raises(TypeError):
            await storage.set_alarm("tomorrow")
        assert await storage.get_alarm() is None
        when = datetime(2100, 1, 1, tzinfo=UTC)
        await storage.set_alarm(when)
        assert await storage.get_alarm() == int(when.timestamp() * 1000)
        await storage.set_alarm(4_200_000_000_000)  # one alarm per object: replaced
        return await storage.get_alarm()

    assert await probe.run(scenario) == 4_200_000_000_000
    state = await replay(probe.database_url, probe.object_id())
    assert state.alarm_ms == 4_200_000_000_000


async def test_class_without_alarm_handler(database_url):
    async with serve(database_url, app()) as node:
        response = await node.client.get("/noalarm/n")
        assert await response.text() == NEEDS_HANDLER
        object_id = str(node.runtime.env["NOALARM"].id_from_name("n"))
        state = await replay(database_url, object_id)
        assert state.alarm_ms is None


async def test_alarm_fires(database_url):
    async with serve(database_url, app()) as node:
        before = now_ms()
        set_reply = await clock(node.client, "in=200")
        assert before + 200 <= set_reply["alarm"] <= now_ms() + 200
        await eventually(lambda: Clock.calls)
        (call,) = Clock.calls
        assert call["alarm"] is None  # inside alarm() it no longer counts as set
        assert (call["retry_count"], call["is_retry"]) == (0, False)
        assert call["at"] >= set_reply["alarm"]
        assert call["name"] == "c"
        assert (await clock(node.client))["alarm"] is None
        object_id = str(node.runtime.env["CLOCK"].id_from_name("c"))
        state = await replay(database_url, object_id)
        assert state.alarm_ms is None
        assert state.storage["fired"] == 1


async def test_a_failing_alarm_is_retried(database_url):
    Clock.failures_left = 1
    async with serve(database_url, app()) as node:
        await clock(node.client, "in=10")
        await eventually(lambda: Clock.calls)
        # Failed, and its retry has not begun: the alarm still counts as set.
        pending = (await clock(node.client))["alarm"]
        assert pending is not None and pending > Clock.calls[0]["at"]
        # The first retry comes after 2 s plus up to 25 % jitter.
        await eventually(lambda: len(Clock.calls) == 2, timeout=8)
        first, second = Clock.calls
        assert (first["retry_count"], first["is_retry"]) == (0, False)
        assert (second["retry_count"], second["is_retry"]) == (1, True)
        assert 1900 <= second["at"] - first["at"] <= 4000
        await asyncio.sleep(0.3)
        assert len(Clock.calls) == 2  # succeeded: no more retries
        assert (await clock(node.client))["alarm"] is None
        object_id = str(node.runtime.env["CLOCK"].id_from_name("c"))
        state = await replay(database_url, object_id)
        # The failed attempt's writes were undone; the retry's write stayed.
        assert state.storage["fired"] == 2
        assert state.alarm_ms is None


async def test_delete_alarm_cancels(database_url):
    async with serve(database_url, app()) as node:
        assert (await clock(node.client, "in=300"))["alarm"] is not None
        assert (await clock(node.client, "delete=1"))["alarm"] is None
        await asyncio.sleep(0.8)
        assert Clock.calls == []
        assert (await clock(node.client, "delete=1"))["alarm"] is None  # nothing to delete


async def test_replacing_the_alarm_moves_it(database_url):
    async with serve(database_url, app()) as node:
        await clock(node.client, "in=60000")
        await clock(node.client, "in=100")
        await eventually(lambda: Clock.calls)
        await asyncio.sleep(0.3)
        assert len(Clock.calls) == 1


async def test_alarm_set_inside_the_handler_runs_again(database_url):
    Clock.rearm_once = True
    async with serve(database_url, app()) as node:
        await clock(node.client, "in=50")
        await eventually(lambda: len(Clock.calls) == 2)
        assert [c["retry_count"] for c in Clock.calls] == [0, 0]
        assert (await clock(node.client))["alarm"] is None


async def test_alarm_wakes_a_hibernated_object_which_knows_its_name(database_url):
    async with serve(database_url, app(), hibernate_after=0.2) as node:
        await clock(node.client, "in=1200")
        await eventually(lambda: not node.runtime.activations)
        assert Clock.calls == []
        await eventually(lambda: Clock.calls, timeout=5)
        assert Clock.calls[0]["name"] == "c"
        assert Clock.calls[0]["alarm"] is None
