"""Exactly once through resets: the output of every committed turn is released, and the
deliveries of turns that did not commit are handled again, each recorded once."""

from __future__ import annotations

import aiohttp
import asyncpg

from service import Application, DurableObject, Response, WebSocketPair
from service.runtime.inbox_writes import NOT_RECORDED
from tests.support import serve

# Test-only: an event with "slow" in its data commits late, one with "refuse" never does.
TRIGGER = """
CREATE FUNCTION mark_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.data::text LIKE '%refuse%' THEN RAISE EXCEPTION 'refused by test trigger'; END IF;
  IF NEW.data::text LIKE '%slow%' THEN PERFORM pg_sleep(0.5); END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER mark_events BEFORE INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION mark_events();
"""


class Room(DurableObject):
    #: Frames are not recorded: a turn that only sends writes nothing of its own.
    record_messages = False

    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        if message == "abort":
            self.ctx.abort("asked to")
        if message.startswith("put "):
            self.ctx.storage.kv.put("value", message.removeprefix("put "))
        ws.send(f"done {message}")


async def _install(database_url: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(database_url)
    await connection.execute(TRIGGER)
    return connection


async def test_a_reset_still_releases_the_output_of_turns_that_commit(database_url):
    sql = await _install(database_url)
    try:
        async with serve(database_url, Application({"R": Room})) as node:
            ws = await node.client.ws_connect("/r/a")
            # The first turn's commit takes half a second; the second resets the object
            # meanwhile. The first commit lands: its frame must still go out, once.
            await ws.send_str("put slow")
            await ws.send_str("abort")
            await ws.send_str("after")
            got = [await ws.receive_str(timeout=10) for _ in range(2)]
            assert got == ["done put slow", "done after"]
            stored = await sql.fetchval("SELECT count(*) FROM events WHERE type = 'storage_put'")
            assert stored == 1
            await ws.close()
    finally:
        await sql.close()


async def test_a_turn_that_wrote_nothing_behind_a_refused_commit_is_handled_again(
    database_url,
):
    sql = await _install(database_url)
    try:
        async with serve(database_url, Application({"R": Room})) as node:
            ws = await node.client.ws_connect("/r/b")
            # "put refuse" is refused, and given up after a few tries; "echo" wrote nothing
            # but ran on state that included the refused write: it is handled again each
            # time, and what it sent on that state never goes out. Once the message is given
            # up, its client is told: the socket closes with 1011, so that it reconnects.
            await ws.send_str("put refuse")
            await ws.send_str("echo")
            closed = await ws.receive(timeout=15)
            assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, NOT_RECORDED[0])
            again = await node.client.ws_connect("/r/b")
            await again.send_str("last")
            assert await again.receive_str(timeout=10) == "done last"
            await again.close()
        assert await sql.fetchval("SELECT count(*) FROM events WHERE type = 'storage_put'") == 0
    finally:
        await sql.close()
