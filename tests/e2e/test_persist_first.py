"""Persist first: nothing is visible outside an object before the events behind it commit."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest

from service import Application, DurableObject, Response, WebSocketPair
from service.events import snapshot
from service.runtime.inbox_writes import NOT_RECORDED
from tests.support import eventually, replay, serve

# A test-only trigger: a commit carrying a message with this text fails, or waits.
FAIL_TRIGGER = """
CREATE FUNCTION fail_on_marker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.type = 'message_received' AND NEW.data->>'text' LIKE 'boom%' THEN
    RAISE EXCEPTION 'refused by test trigger';
  END IF;
  IF NEW.type = 'message_received' AND NEW.data->>'text' LIKE 'slow%' THEN
    PERFORM pg_sleep(0.3);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fail_on_marker BEFORE INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION fail_on_marker();
"""


class Counter(DurableObject):
    async def fetch(self, request):
        if request.path.endswith("/value"):
            return Response(str(self.ctx.storage.kv.get("n") or 0))
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, ["all"])
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        n = (self.ctx.storage.kv.get("n") or 0) + 1
        self.ctx.storage.kv.put("n", n)
        for other in self.ctx.get_websockets("all"):
            other.send(f"{message}:{n}")


async def _install_trigger(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(FAIL_TRIGGER)
    finally:
        await connection.close()


async def test_a_frame_is_sent_only_after_its_events_are_committed(database_url):
    await _install_trigger(database_url)
    observer = await asyncpg.connect(database_url)
    try:
        async with serve(database_url, Application({"C": Counter})) as node:
            ws = await node.client.ws_connect("/c/gate")
            await ws.send_str("slow-1")
            assert await ws.receive_str(timeout=5) == "slow-1:1"
            # The frame arrived: the event that caused it must already be visible to others.
            rows = await observer.fetch(
                "SELECT type, data->>'text' AS text FROM events WHERE type = 'message_received'"
            )
            assert [r["text"] for r in rows] == ["slow-1"]
            put = await observer.fetchval("SELECT count(*) FROM events WHERE type = 'storage_put'")
            assert put == 1
            await ws.close()
    finally:
        await observer.close()


async def test_a_failed_commit_shows_nothing_and_the_object_comes_back_from_the_log(
    database_url,
):
    await _install_trigger(database_url)
    async with serve(database_url, Application({"C": Counter})) as node:
        sender = await node.client.ws_connect("/c/fail")
        watcher = await node.client.ws_connect("/c/fail")
        await sender.send_str("ok")
        assert await sender.receive_str(timeout=5) == "ok:1"
        assert await watcher.receive_str(timeout=5) == "ok:1"

        await sender.send_str("boom")
        # No client sees a frame derived from the refused commit, not even once. Given up
        # after its third refused commit, the message's sender is told: its socket closes
        # with 1011, and it reconnects.
        closed = await sender.receive(timeout=10)
        assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, NOT_RECORDED[0])
        with pytest.raises(TimeoutError):
            await watcher.receive_str(timeout=0.5)

        # The object was reset and rebuilt from the log: the count is still 1.
        response = await node.client.get("/c/fail/value")
        assert await response.text() == "1"
        sender = await node.client.ws_connect("/c/fail")
        await sender.send_str("ok2")
        assert await sender.receive_str(timeout=5) == "ok2:2"
        assert await watcher.receive_str(timeout=5) == "ok2:2"

        activation = node.runtime.activations[next(iter(node.runtime.activations))]
        await activation.sync()
        live = snapshot.comparable(activation.state)
        assert snapshot.comparable(await replay(database_url, activation.key)) == live
        await sender.close()
        await watcher.close()


async def test_a_response_waits_for_its_commit(database_url):
    class Writer(DurableObject):
        async def fetch(self, request):
            self.ctx.storage.kv.put("k", request.query.get("v", ""))
            return Response("stored")

    trigger = """
    CREATE FUNCTION slow_put() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$;
    CREATE TRIGGER slow_put BEFORE INSERT ON events
      FOR EACH ROW WHEN (NEW.type = 'storage_put') EXECUTE FUNCTION slow_put();
    """
    connection = await asyncpg.connect(database_url)
    await connection.execute(trigger)
    try:
        async with serve(database_url, Application({"W": Writer})) as node:
            response = await node.client.get("/w/one?v=x")
            assert await response.text() == "stored"
            value = await connection.fetchval(
                "SELECT data->'entries'->>'k' FROM events WHERE type = 'storage_put'"
            )
            assert value == "x"
    finally:
        await connection.close()


async def test_failed_fetch_commit_answers_503_and_loses_nothing_acknowledged(database_url):
    class Writer(DurableObject):
        async def fetch(self, request):
            self.ctx.storage.kv.put(request.query["k"], request.query["v"])
            return Response("stored")

    connection = await asyncpg.connect(database_url)
    await connection.execute(
        """
        CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.data->'entries'->'bad' IS NOT NULL THEN RAISE EXCEPTION 'refused'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_bad BEFORE INSERT ON events
          FOR EACH ROW EXECUTE FUNCTION refuse_bad();
        """
    )
    try:
        async with serve(database_url, Application({"W": Writer})) as node:
            assert (await node.client.get("/w/x?k=good&v=1")).status == 200
            failed = await node.client.get("/w/x?k=bad&v=2")
            assert failed.status == 503
            assert "could not commit" in await failed.text()
            await asyncio.sleep(0.1)
            assert (await node.client.get("/w/x?k=good2&v=3")).status == 200
            keys = await connection.fetch(
                "SELECT json_object_keys(data->'entries') AS k FROM events "
                "WHERE type = 'storage_put' ORDER BY seq"
            )
            assert [r["k"] for r in keys] == ["good", "good2"]
            await eventually(lambda: bool(node.runtime.activations))
    finally:
        await connection.close()
