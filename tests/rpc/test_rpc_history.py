"""RPC calls in the log: persist first, replay after hibernation, history lines and JSON,
and rerun, which runs recorded calls again and compares what they came to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from service import Application, StorageUnavailableError
from service.events import snapshot
from service.history import json_shapes
from service.history_root import open_history
from service.ports.history import HistoryService
from service.rerun.engine import rerun
from service.settings import Settings
from tests.rpc.objects import Lobby, Room, application
from tests.support import eventually, fold_all, replay, serve

# A test-only trigger: a commit carrying a call whose first argument starts with "boom"
# fails; one starting with "slow" waits first.
TRIGGER = """
CREATE FUNCTION rpc_marker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.type = 'rpc_called' AND NEW.data->'args'->>0 LIKE 'boom%' THEN
    RAISE EXCEPTION 'refused by test trigger';
  END IF;
  IF NEW.type = 'rpc_called' AND NEW.data->'args'->>0 LIKE 'slow%' THEN
    PERFORM pg_sleep(0.3);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER rpc_marker BEFORE INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION rpc_marker();
"""


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[HistoryService]:
    async with open_history(Settings(database_url=database_url)) as service:
        yield service


async def test_a_result_comes_back_only_once_its_turn_is_committed(database_url):
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(TRIGGER)
        async with serve(database_url, application()) as node:
            room = node.runtime.env.ROOM.get_by_name("hall")
            assert await room.add("slow-1") == 1
            # The answer arrived: the call, its write and its result are in the log.
            types = await connection.fetch("SELECT type FROM events ORDER BY seq")
            assert [r["type"] for r in types] == ["rpc_called", "storage_put", "rpc_returned"]
            # A refused commit: the caller hears of it and never sees the result.
            with pytest.raises(StorageUnavailableError):
                await room.add("boom")
            # The object comes back from the log, without the refused call.
            assert await room.items() == ["c:slow-1"]
    finally:
        await connection.close()


async def test_a_call_survives_hibernation_and_replay(database_url):
    async with serve(database_url, application(), hibernate_after=0.2) as node:
        runtime = node.runtime
        room = runtime.env.ROOM.get_by_name("hall")
        ws = await node.client.ws_connect("/room/hall?user=ada")
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "1"
        assert await room.add("bytes") == 2
        assert await room.echo(b"\x00") == {"args": [b"\x00"], "kwargs": {}}
        room_id = str(runtime.env.ROOM.id_from_name("hall"))
        live = snapshot.comparable(runtime.activations[room_id].state)
        await eventually(lambda: room_id not in runtime.activations, timeout=10)
        # The log alone gives the state the live object had (with or without its snapshot).
        assert snapshot.comparable(await replay(database_url, room_id)) == live
        assert snapshot.comparable(await fold_all(database_url, room_id)) == live
        # A call wakes it, by replay, with its sockets and storage as they were.
        assert await room.members() == 1
        assert await room.items() == ["m:hello", "c:bytes"]
        await ws.send_str("again")
        assert await ws.receive_str(timeout=5) == "3"
        await ws.close()


async def test_history_reads_calls_as_lines_and_json(database_url, history):
    async with serve(database_url, application()) as node:
        response = await node.client.get("/lobby?room=hall&item=x")
        assert response.status == 200
        room = node.runtime.env.ROOM.get_by_name("hall")
        with pytest.raises(ValueError):
            await room.fail("value")
    page = await history.events("ROOM/hall", types=["rpc_called", "rpc_returned"])
    lines = [json_shapes.event(e, "ROOM/hall")["text"] for e in page.events]
    assert lines == [
        'called add("lobby:x") by LOBBY/main',
        "call returned 1",
        "called items() by LOBBY/main",
        'call returned ["c:lobby:x"]',
        'called fail("value") by the router',
        "call raised ValueError: bad value",
    ]
    shape = json_shapes.event(page.events[-1], "ROOM/hall")
    assert shape["type"] == "rpc_returned" and shape["socket_id"] is None
    assert shape["data"]["error_type"] == "ValueError"
    assert shape["data"]["call_id"] == json_shapes.event(page.events[-2], None)["data"]["call_id"]


class ChangedRoom(Room):
    """The same room, whose ``add`` now answers with the list instead of its length."""

    async def add(self, item: str) -> Any:
        self._append(f"c:{item}")
        return self.items()


class StricterRoom(Room):
    """The same room, whose ``add`` now refuses long items."""

    async def add(self, item: str) -> int:
        if len(item) > 3:
            raise ValueError("item too long")
        return self._append(f"c:{item}")


async def test_rerun_runs_recorded_calls_and_compares_what_they_came_to(database_url, history):
    async with serve(database_url, application()) as node:
        room = node.runtime.env.ROOM.get_by_name("hall")
        ws = await node.client.ws_connect("/room/hall?user=ada")
        await ws.send_str("hi")
        assert await ws.receive_str(timeout=5) == "1"
        for item in ("one", "three"):
            await room.add(item)
        assert await room.echo(b"\x01", k=[b""]) == {"args": [b"\x01"], "kwargs": {"k": [b""]}}
        with pytest.raises(ValueError):
            await room.fail("value")
        await ws.close()
    same = await rerun(history, application(), "ROOM/hall")
    assert same.divergence is None, same.divergence
    # The upgrade, the frame, four calls and the close.
    assert same.agreed == 7

    changed = Application({"ROOM": ChangedRoom, "LOBBY": Lobby})
    report = await rerun(history, changed, "ROOM/hall")
    divergence = report.divergence
    assert divergence is not None and divergence.inbound is not None
    assert divergence.inbound.event.type == "rpc_called"
    assert report.agreed == 2  # the upgrade and the frame
    assert divergence.reason.startswith("rpc_returned.result: the log has 2, the rerun [")
    assert [e.event.type for e in divergence.recorded] == [
        "rpc_called",
        "storage_put",
        "rpc_returned",
    ]

    stricter = Application({"ROOM": StricterRoom, "LOBBY": Lobby})
    report = await rerun(history, stricter, "ROOM/hall")
    divergence = report.divergence
    assert divergence is not None and report.agreed == 3  # "one" still agrees
    # The rerun's call raised where the log's returned: its write is gone, then its result.
    assert [e.type for e in divergence.rerun] == ["rpc_called", "rpc_returned"]
    assert divergence.rerun[-1].error_type == "ValueError"
    assert "the log has storage_put, the rerun rpc_returned" in divergence.reason
