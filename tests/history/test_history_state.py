"""State at a seq or a time, rebuilt by the one replay, equals the live state at that point."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from service import Application, DurableObject, Response, WebSocketPair
from service.events import bookmarks, snapshot
from service.events.fold import ObjectState, apply
from service.ports.history import HistoryService, OutOfHistoryError
from tests.store.helpers import Stores, after, object_id, puts, write_with_snapshots
from tests.support import eventually, serve


class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        name = request.query["name"]
        self.ctx.accept_websocket(server, [f"user:{name}", "room"])
        server.serialize_attachment({"name": name})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        if message.startswith("restore:"):
            # Durable when it returns; the abort starts the next session, which restores.
            await self.ctx.storage.on_next_session_restore_bookmark(message.split(":")[1])
            self.ctx.abort()
        if message == "forget":
            self.ctx.storage.kv.delete("count")
        else:
            count = (self.ctx.storage.kv.get("count") or 0) + 1
            self.ctx.storage.kv.put("count", count)
            self.ctx.storage.kv.put(f"said:{message}", ws.deserialize_attachment()["name"])
            ws.serialize_attachment({**ws.deserialize_attachment(), "said": count})
        ws.send(f"ok:{message}")


async def test_state_at_every_point_equals_the_live_state_then(
    database_url: str, history: HistoryService
) -> None:
    """A node records a scenario (with snapshots, so replay starts from one); the live state
    after each step must be what the history rebuilds at that seq."""
    live: dict[int, dict[str, Any]] = {}
    async with serve(database_url, Application({"ROOM": Room}), snapshot_every=3) as node:
        alice = await node.client.ws_connect("/room/hall?name=alice")
        bob = await node.client.ws_connect("/room/hall?name=bob")

        async def step(ws: Any, text: str) -> None:
            await ws.send_str(text)
            assert await ws.receive_str(timeout=5) == f"ok:{text}"
            activation = next(iter(node.runtime.activations.values()))
            await activation.sync()
            live[activation.state.seq] = snapshot.comparable(activation.state)

        for n, ws in enumerate([alice, bob, alice, alice, bob, alice, bob]):
            await step(ws, f"m{n}")
            if n == 2:
                mark = bookmarks.of_seq(max(live))
        await step(alice, "forget")
        # A restore: the request (with the frame that asked for it) is committed, the abort
        # resets the object, and the next frame wakes it, restored, before it is handled.
        aborted = next(iter(node.runtime.activations.values()))
        await alice.send_str(f"restore:{mark}")
        await aborted.closed
        await step(bob, "restored")
        activation = next(iter(node.runtime.activations.values()))
        assert (
            activation.state.storage["count"]
            == live[bookmarks.to_seq(mark)]["storage"]["count"] + 1
        )

        async def closed(ws: Any, sockets_left: int) -> None:
            await ws.close()
            await eventually(lambda: len(activation.state.sockets) == sockets_left)
            await activation.sync()
            live[activation.state.seq] = snapshot.comparable(activation.state)

        await closed(bob, 1)
        await step(alice, "last")
        await closed(alice, 0)

    found = await history.find("ROOM/hall")
    assert found.last_seq == max(live) and len(live) == 12
    kinds = [e.event.type for e in (await history.events("ROOM/hall", limit=1000)).events]
    assert kinds.count("restore_requested") == kinds.count("storage_restored") == 1
    from_snapshot = 0
    for seq, expected in live.items():
        rebuilt = await history.state("ROOM/hall", at=seq)
        assert (rebuilt.seq, rebuilt.state.seq) == (seq, seq)
        assert snapshot.comparable(rebuilt.state) == expected, f"at seq {seq}"
        assert rebuilt.snapshot_seq <= seq and rebuilt.snapshot_seq + rebuilt.folded == seq
        from_snapshot += rebuilt.snapshot_seq > 0
    # The store keeps only an object's newest snapshots: the latest points start from one.
    assert from_snapshot >= 2
    now = await history.state("ROOM/hall")
    assert now.seq == found.last_seq and snapshot.comparable(now.state) == live[found.last_seq]
    assert snapshot.comparable((await history.state("ROOM/hall", at=0)).state)["storage"] == {}

    # At a time: every event of one commit shares its time, so the state at the time of an
    # event is the state after the last event recorded then.
    logged = (await history.events("ROOM/hall")).events
    for event in logged:
        last_then = max(e.seq for e in logged if e.recorded_at <= event.recorded_at)
        at_time = await history.state("ROOM/hall", at=event.recorded_at)
        assert at_time.seq == last_then
        if last_then in live:
            assert snapshot.comparable(at_time.state) == live[last_then]
    later = await history.state("ROOM/hall", at=logged[-1].recorded_at + timedelta(days=1))
    assert later.seq == found.last_seq


async def test_an_old_point_of_a_long_log_starts_from_a_snapshot_kept_for_good(
    history: HistoryService, stores: Stores
) -> None:
    """Past the two newest snapshots, the state at an old seq folds from the first snapshot
    of its span of 10,000 seqs, not from seq 1, and is what a fold from seq 1 gives."""
    store = await stores.open("node-a")
    claim = await store.claim(object_id("long"), "CHAT", "long")
    await write_with_snapshots(store, claim, 22_050, batch=150, every=1000)
    for seq, snapshot_seq in ((15_000, 10_050), (20_099, 10_050), (20_100, 20_100)):
        at = await history.state("CHAT/long", at=seq)
        assert (at.seq, at.snapshot_seq, at.folded) == (seq, snapshot_seq, seq - snapshot_seq)
        from_start = ObjectState()
        async for page in store.events_between(claim.object_id, 0, seq):
            for event in page:
                apply(from_start, event)
        assert snapshot.comparable(at.state) == snapshot.comparable(from_start), f"at {seq}"
    # Below the first span nothing is kept: an early point folds from seq 1.
    early = await history.state("CHAT/long", at=9_999)
    assert (early.snapshot_seq, early.folded) == (0, 9_999)


async def test_a_point_outside_the_history_says_so(
    history: HistoryService, stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open("node-a")
    claim = await store.claim(object_id("room"), "CHAT", "room")
    empty = await store.claim(object_id("empty"), "CHAT", None)
    await store.append(after(claim, 0, puts(4)))
    first = await sql.fetchval(
        "SELECT recorded_at FROM events WHERE object_id = $1", claim.object_id
    )

    assert (await history.state("CHAT/room", at=4)).state.seq == 4
    with pytest.raises(
        OutOfHistoryError, match="CHAT/room has events 1 to 4: there is no state after seq 5"
    ):
        await history.state("CHAT/room", at=5)
    with pytest.raises(OutOfHistoryError, match="no state after seq -1"):
        await history.state("CHAT/room", at=-1)
    before = first - timedelta(seconds=1)
    with pytest.raises(OutOfHistoryError, match="is before the first event of CHAT/room") as raised:
        await history.state("CHAT/room", at=before)
    assert first.isoformat() in str(raised.value)
    with pytest.raises(OutOfHistoryError, match=f"CHAT {empty.object_id} has no events yet"):
        await history.state(empty.object_id, at=first)
    assert (await history.state(empty.object_id)).state.seq == 0
