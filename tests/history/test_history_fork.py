"""A fork: a new object whose log begins with the state of another at one of its events."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service import (
    Application,
    DurableObject,
    Request,
    Response,
    WebSocketPair,
    WebSocketRequestResponsePair,
)
from service.api.ids import IdFactory
from service.events import snapshot, types
from service.ports.history import (
    HistoryError,
    HistoryService,
    ObjectExistsError,
    OutOfHistoryError,
    UnknownObjectError,
)
from tests.support import eventually, fold_all, replay, serve

FAR = 4_000_000_000_000  # an alarm that does not fire during the test


class Room(DurableObject):
    async def fetch(self, request: Request) -> Response:
        ctx, query = self.ctx, request.query
        if request.headers.get("Upgrade") == "websocket":
            client, server = WebSocketPair()
            ctx.accept_websocket(server, ["player"])
            return Response(status=101, websocket=client)
        if "put" in query:
            await ctx.storage.put(query["put"], query["value"])
        if "delete" in query:
            await ctx.storage.delete(query["delete"])
        if "auto" in query:
            ctx.set_websocket_auto_response(WebSocketRequestResponsePair(query["auto"], "pong"))
        if "timeout" in query:
            ctx.set_hibernatable_websocket_event_timeout(int(query["timeout"]))
        if "alarm" in query:
            await ctx.storage.set_alarm(int(query["alarm"]))
        auto = ctx.get_websocket_auto_response()
        return Response.json(
            {
                "name": ctx.id.name,
                "storage": await ctx.storage.list(),
                "auto": [auto.request, auto.response] if auto else None,
                "timeout": ctx.get_hibernatable_websocket_event_timeout(),
                "alarm": await ctx.storage.get_alarm(),
                "sockets": len(ctx.get_websockets()),
            }
        )

    async def alarm(self) -> None:
        await self.ctx.storage.put("alarm ran", True)


APP = Application({"ROOM": Room})


async def events_of(sql: asyncpg.Connection, object_id: str) -> list[tuple[int, str, str]]:
    rows = await sql.fetch(
        "SELECT seq, type, data::text FROM events WHERE object_id = $1 ORDER BY seq", object_id
    )
    return [(r["seq"], r["type"], r["data"]) for r in rows]


async def test_a_fork_starts_from_the_sources_state_and_is_reached_by_name(
    database_url: str, history: HistoryService, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, APP) as node:
        get = node.client.get
        player = await node.client.ws_connect("/room/hall")
        await get("/room/hall?put=a&value=1&auto=ping&timeout=500")
        at_then: dict[str, Any] = await (await get(f"/room/hall?put=b&value=2&alarm={FAR}")).json()
        seq = (await history.find("ROOM/hall")).last_seq
        await get("/room/hall?put=c&value=3&delete=a&timeout=0")
        source = await history.find("ROOM/hall")
        source_log = await events_of(sql, source.object_id)

        forked = await history.fork("ROOM/hall", at=seq, as_name="hall copy", by="ops@test")
        assert (forked.binding, forked.name, forked.seq, forked.by) == (
            "ROOM",
            "hall copy",
            seq,
            "ops@test",
        )
        assert forked.object_id == str(node.runtime.env["ROOM"].id_from_name("hall copy"))
        assert forked.source.object_id == source.object_id
        assert (forked.keys, forked.alarm_ms) == (2, FAR)

        # Its log is one event, which says where it came from and carries what it copied.
        [(first_seq, kind, _)] = await events_of(sql, forked.object_id)
        assert (first_seq, kind) == (1, "object_forked")
        [logged] = (await history.events("ROOM/hall copy")).events
        assert logged.event == types.ObjectForked(
            source_object_id=source.object_id,
            source_binding="ROOM",
            source_name="hall",
            source_seq=seq,
            by="ops@test",
            storage={"a": "1", "b": "2"},
            auto_response=("ping", "pong"),
            event_timeout_ms=500,
            alarm_ms=FAR,
        )
        assert (
            await sql.fetchval(
                "SELECT (extract(epoch FROM scheduled_at) * 1000)::bigint FROM alarms"
                " WHERE object_id = $1",
                forked.object_id,
            )
            == FAR
        )
        assert (await history.find(forked.object_id)).name == "hall copy"

        # Its clients reach it by name, as any other object, and find the copied state;
        # sockets are connections to the source and were not copied.
        seen = await (await get("/room/hall%20copy")).json()
        assert seen == {**at_then, "name": "hall copy", "sockets": 0}
        visitor = await node.client.ws_connect("/room/hall%20copy")
        await visitor.send_str("ping")
        assert await visitor.receive_str(timeout=5) == "pong"
        await get("/room/hall%20copy?put=d&value=4")
        activation = node.runtime.activations[forked.object_id]
        await activation.sync()
        live = snapshot.comparable(activation.state)
        assert snapshot.comparable(await replay(database_url, forked.object_id)) == live
        assert snapshot.comparable(await fold_all(database_url, forked.object_id)) == live

        # The source is untouched.
        assert await events_of(sql, source.object_id) == source_log
        assert (await (await get("/room/hall")).json())["storage"] == {"b": "2", "c": "3"}
        await player.close()
        await visitor.close()


async def test_a_fork_at_a_time_takes_the_state_then(
    database_url: str, history: HistoryService
) -> None:
    async with serve(database_url, APP) as node:
        await node.client.get("/room/r?put=k&value=before")
        logged = (await history.events("ROOM/r")).events
        then = logged[-1].recorded_at
        await node.client.get("/room/r?put=k&value=after")
        forked = await history.fork(
            "ROOM/r", at=then + timedelta(microseconds=1), as_name="f", by="x"
        )
        assert forked.seq == logged[-1].seq
        assert (await (await node.client.get("/room/f")).json())["storage"] == {"k": "before"}


async def test_a_forks_alarm_already_due_fires_in_the_fork(
    database_url: str, history: HistoryService, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, APP, poll_interval=0.2) as node:
        soon = int((time.time() + 0.3) * 1000)
        await node.client.get(f"/room/timer?alarm={soon}")
        seq = (await history.find("ROOM/timer")).last_seq
        await eventually(
            lambda: sql.fetchval(
                "SELECT count(*) FROM events AS e JOIN objects AS o USING (object_id)"
                " WHERE o.name = 'timer' AND e.type = 'storage_put'"
            )
        )
        forked = await history.fork("ROOM/timer", at=seq, as_name="timer copy", by="x")
        assert forked.alarm_ms == soon  # due already: the node's poll finds it and fires it
        await eventually(
            lambda: sql.fetchval(
                "SELECT count(*) FROM events WHERE object_id = $1 AND type = 'storage_put'",
                forked.object_id,
            )
        )
        seen = await (await node.client.get("/room/timer%20copy")).json()
        assert seen["storage"] == {"alarm ran": True} and seen["alarm"] is None


async def test_forks_that_cannot_be_made_are_refused_and_write_nothing(
    database_url: str, history: HistoryService, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, APP) as node:
        await node.client.get("/room/src?put=k&value=1")
        await node.client.get("/room/src?put=k&value=2")
        await node.client.get("/room/taken?put=k&value=0")
        first = (await history.events("ROOM/src")).events[0].recorded_at
    # Claimed by a node and with no events yet (a request records one as soon as its turn
    # ends): a fork may not take it now.
    awake = IdFactory("ROOM").from_name("awake").to_string()
    await sql.execute(
        "INSERT INTO objects (object_id, binding, name, owner_node) VALUES ($1, 'ROOM', 'awake',"
        " 'elsewhere')",
        awake,
    )
    count = "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM objects)"
    before = await sql.fetchval(count)

    async def refused(kind: type[Exception], message: str, **call: Any) -> None:
        arguments: dict[str, Any] = {"at": 1, "as_name": "new", "by": "x", **call}
        ref = arguments.pop("ref", "ROOM/src")
        with pytest.raises(kind, match=message):
            await history.fork(ref, **arguments)

    await refused(
        ObjectExistsError, r"ROOM/taken \(\w+\) exists already, with 2 events", as_name="taken"
    )
    # Each request to src recorded its request_received and a storage_put.
    await refused(ObjectExistsError, "exists already, with 4 events", as_name="src")
    await refused(
        UnknownObjectError, "no object of binding ROOM is named 'nothing'", ref="ROOM/nothing"
    )
    await refused(
        OutOfHistoryError, "ROOM/src has events 1 to 4: there is no state after seq 5", at=5
    )
    await refused(
        OutOfHistoryError, "is before the first event of ROOM/src", at=first - timedelta(seconds=1)
    )
    await refused(ValueError, "has no time zone", at=datetime(2026, 1, 1))
    await refused(HistoryError, "is not of the namespace keyed 'OTHER'", unique_key="OTHER")
    await refused(HistoryError, "cannot name an object", as_name="nul\x00")
    assert await sql.fetchval(count) == before

    await refused(ObjectExistsError, "has no events but runs on node elsewhere", as_name="awake")
    # Its node let go of it: with no events and no owner, it may be taken.
    await sql.execute("UPDATE objects SET owner_node = NULL WHERE name = 'awake'")
    forked = await history.fork("ROOM/src", at=2, as_name="awake", by="x")
    assert (await history.find("ROOM/awake")).last_seq == 1
    assert forked.keys == 1
