"""Point-in-time recovery: bookmarks, and a restore appended to the log when the object wakes."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service import Application, DurableObject, DurableObjectError, Request, Response
from service.events import bookmarks, snapshot, values
from tests.api.conftest import ProbeNode
from tests.support import fold_all, replay, serve


def raises(kind: type[BaseException], message: str) -> Any:
    return pytest.raises(kind, match=f"^{re.escape(message)}$")


async def log_rows(sql: asyncpg.Connection, object_id: str) -> list[tuple[int, str, str]]:
    rows = await sql.fetch(
        "SELECT seq, type, data::text FROM events WHERE object_id = $1 ORDER BY seq", object_id
    )
    return [(r["seq"], r["type"], r["data"]) for r in rows]


async def live_equals_replay(probe: ProbeNode, name: str = "probe") -> dict[str, Any]:
    """The live state is the fold of the log (from its snapshot, and from seq 1): returns the
    storage, decoded."""
    activation = probe.node.runtime.activations[probe.object_id(name)]
    await activation.sync()
    live = snapshot.comparable(activation.state)
    assert snapshot.comparable(await replay(probe.database_url, activation.key)) == live
    assert snapshot.comparable(await fold_all(probe.database_url, activation.key)) == live
    return {key: values.decode(value) for key, value in activation.state.storage.items()}


async def storage_of(probe: ProbeNode, name: str = "probe") -> dict[str, Any]:
    """The object's storage as it reads it (through JSON: bytes travel encoded)."""

    async def scenario(obj, request):
        return values.encode(await obj.ctx.storage.list())

    result: dict[str, Any] = values.decode(await probe.run(scenario, name))
    return result


async def test_bookmarks_order_as_strings_in_time_order(probe: ProbeNode) -> None:
    async def scenario(obj, request):
        storage = obj.ctx.storage
        marks = [await storage.get_current_bookmark()]
        for n in range(12):  # past 9 and 10: string order must not be digit-count order
            await storage.put(f"k{n}", n)
            marks.append(await storage.get_current_bookmark())
        # Reading changes nothing; writes not yet durable are included.
        assert await storage.get_current_bookmark() == marks[-1]
        return marks

    first = await probe.run(scenario)
    second = await probe.run(scenario)
    marks = first + second[1:]
    assert marks == sorted(marks) and len(set(marks)) == len(marks)
    assert all(len(mark) == bookmarks.WIDTH and mark.isdigit() for mark in marks)
    start = bookmarks.to_seq(first[0])  # after the request's own record (request_received)
    assert [bookmarks.to_seq(mark) for mark in first] == list(range(start, start + 13))
    assert first[-1] < second[-1]


async def test_bookmark_for_time_names_the_state_then(probe: ProbeNode) -> None:
    async def put(n: int):
        async def scenario(obj, request):
            await obj.ctx.storage.put("n", n)
            return await obj.ctx.storage.get_current_bookmark()

        return await probe.run(scenario)

    async def bookmark_for(at: Any) -> str:
        async def scenario(obj, request):
            return await obj.ctx.storage.get_bookmark_for_time(at)

        result: str = await probe.run(scenario)
        return result

    before_any = datetime.now(UTC)
    await asyncio.sleep(0.01)
    points: list[tuple[datetime, str]] = []
    for n in range(3):
        mark = await put(n)  # committed: its response waited for its commit
        await asyncio.sleep(0.01)
        points.append((datetime.now(UTC), mark))
        await asyncio.sleep(0.01)

    for at, mark in points:
        assert await bookmark_for(at.timestamp() * 1000) == mark  # epoch milliseconds
    assert await bookmark_for(before_any.timestamp() * 1000) == bookmarks.of_seq(0)
    assert await bookmark_for(0) == bookmarks.of_seq(0)

    # A datetime works too, and names the same states.
    async def with_datetimes(obj, request):
        storage = obj.ctx.storage
        got = [await storage.get_bookmark_for_time(at) for at, _ in points]
        with raises(ValueError, "getBookmarkForTime() needs a time, not NaN."):
            await storage.get_bookmark_for_time(float("nan"))
        with pytest.raises(ValueError, match="that time is in the future"):
            await storage.get_bookmark_for_time(datetime.now(UTC) + timedelta(minutes=1))
        with raises(TypeError, "getBookmarkForTime() takes a datetime or epoch milliseconds."):
            await storage.get_bookmark_for_time("yesterday")
        return got

    assert await probe.run(with_datetimes) == [mark for _, mark in points]


async def test_restore_then_abort_restores_storage_by_appending(
    probe: ProbeNode, sql: asyncpg.Connection
) -> None:
    async def setup(obj, request):
        storage = obj.ctx.storage
        await storage.put({"a": 1, "b": {"nested": [1, 2]}, "bytes": b"\x00"})
        await storage.set_alarm(4_000_000_000_000)
        mark = await storage.get_current_bookmark()
        await storage.put("a", 2)
        await storage.delete("b")
        await storage.put("c", "later")
        await storage.delete_alarm()
        return mark

    mark = await probe.run(setup)
    object_id = probe.object_id()
    before_restore = await storage_of(probe)
    assert before_restore == {"a": 2, "bytes": b"\x00", "c": "later"}
    logged = await log_rows(sql, object_id)

    holder: dict[str, Any] = {}

    async def restore(obj, request):
        storage = obj.ctx.storage
        await storage.put("written before the request", True)
        holder["undo"] = await storage.on_next_session_restore_bookmark(mark)
        storage.kv.put("undo", holder["undo"])  # after the request: discarded by the abort
        obj.ctx.abort("restoring")

    aborted = await probe.request(restore)
    assert aborted.status == 503 and "restoring" in await aborted.text()
    undo = holder["undo"]
    # The state just before the restore: after the request's record and the write that
    # came before the restore request.
    assert undo == bookmarks.of_seq(len(logged) + 2)

    # The next session starts from the bookmark's state: storage and alarm.
    async def read(obj, request):
        return {
            "storage": values.encode(await obj.ctx.storage.list()),
            "alarm": await obj.ctx.storage.get_alarm(),
            "bookmark": await obj.ctx.storage.get_current_bookmark(),
        }

    restored = await probe.run(read)
    restored["storage"] = values.decode(restored["storage"])
    assert restored["storage"] == {"a": 1, "b": {"nested": [1, 2]}, "bytes": b"\x00"}
    assert restored["alarm"] == 4_000_000_000_000
    # History is never rewritten: the earlier events are there as they were, and the
    # request (with the write before it) and the restore follow them.
    after = await log_rows(sql, object_id)
    assert after[: len(logged)] == logged
    assert [kind for _, kind, _ in after[len(logged) :]] == [
        "request_received",  # the request that asked for the restore
        "storage_put",
        "restore_requested",
        "storage_restored",  # at the next wake, before the constructor
        "request_received",  # the request that read the state
    ]
    assert restored["bookmark"] == bookmarks.of_seq(len(after)) > undo > mark
    assert await live_equals_replay(probe) == restored["storage"]

    # The bookmark returned by the request undoes the restore exactly.
    async def undo_restore(obj, request):
        await obj.ctx.storage.on_next_session_restore_bookmark(undo)
        obj.ctx.abort()

    assert (await probe.request(undo_restore)).status == 503
    undone = await probe.run(read)
    undone["storage"] = values.decode(undone["storage"])
    assert undone["storage"] == {**before_restore, "written before the request": True}
    assert undone["alarm"] is None
    assert await live_equals_replay(probe) == undone["storage"]
    assert (await log_rows(sql, object_id))[: len(after)] == after


async def test_restore_waits_for_the_next_session(probe: ProbeNode) -> None:
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("k", "old")
        mark = await storage.get_current_bookmark()
        await storage.put("k", "new")
        undo = await storage.on_next_session_restore_bookmark(mark)
        # Nothing changes in this session; writes after the request still count.
        assert await storage.get("k") == "new"
        await storage.put("after", 1)
        return undo

    undo = await probe.run(scenario)
    assert await storage_of(probe) == {"k": "new", "after": 1}
    activation = probe.node.runtime.activations[probe.object_id()]
    assert activation.state.pending_restore is not None
    await live_equals_replay(probe)
    # A reset starts the next session (as ctx.abort() would).
    activation.reset("test")
    await activation.closed
    assert await storage_of(probe) == {"k": "old"}
    # After the request's record and the two puts, before the restore request.
    assert bookmarks.to_seq(undo) == 3


async def test_a_handler_that_raises_after_the_request_keeps_it(probe: ProbeNode) -> None:
    async def scenario(obj, request):
        storage = obj.ctx.storage
        mark = await storage.get_current_bookmark()
        await storage.put("kept", 1)
        await storage.on_next_session_restore_bookmark(mark)
        await storage.put("dropped", 1)
        raise RuntimeError("after the request")

    response = await probe.request(scenario)
    assert response.status == 500
    # The handler's writes after the request are undone; the request and what came before
    # it are committed.
    assert await storage_of(probe) == {"kept": 1}
    activation = probe.node.runtime.activations[probe.object_id()]
    assert activation.state.pending_restore == bookmarks.of_seq(1)  # after request_received
    await live_equals_replay(probe)
    activation.reset("test")
    await activation.closed
    assert await storage_of(probe) == {}


async def test_bad_bookmarks_are_refused(probe: ProbeNode) -> None:
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("k", 1)
        current = await storage.get_current_bookmark()
        for bad in ("", "12", "0000007b-0000b26e-00001538-0c3e", " " + current, current + "0"):
            with pytest.raises(ValueError, match=r"^Invalid bookmark .*: a bookmark is 20 decimal"):
                await storage.on_next_session_restore_bookmark(bad)
        with raises(TypeError, "A bookmark is a string, not int."):
            await storage.on_next_session_restore_bookmark(1)
        future = bookmarks.of_seq(bookmarks.to_seq(current) + 1)
        with raises(
            ValueError,
            f"Bookmark {future} is from the future: this object's newest state is {current}.",
        ):
            await storage.on_next_session_restore_bookmark(future)

        async def inside(txn):
            with raises(
                DurableObjectError,
                "Cannot call onNextSessionRestoreBookmark() within a transaction",
            ):
                await txn.on_next_session_restore_bookmark(current)

        await storage.transaction(inside)
        return await storage.get_current_bookmark()

    # Refused requests record nothing.
    assert await probe.run(scenario) == bookmarks.of_seq(2)  # request_received, storage_put
    assert probe.node.runtime.activations[probe.object_id()].state.pending_restore is None


class Ledger(DurableObject):
    """Restores by itself: ``?restore=BOOKMARK`` asks for it and aborts."""

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.constructed_with = dict(ctx.storage.kv.list())

    async def fetch(self, request: Request) -> Response:
        storage = self.ctx.storage
        if "restore" in request.query:
            undo = await storage.on_next_session_restore_bookmark(request.query["restore"])
            if "abort" in request.query:
                self.ctx.abort()
            return Response(undo)
        if "put" in request.query:
            await storage.put(request.query["put"], request.query["value"])
        return Response.json(
            {
                "storage": await storage.list(),
                "constructed_with": self.constructed_with,
                "bookmark": await storage.get_current_bookmark(),
            }
        )


async def test_a_restore_survives_a_restart_and_hibernation(database_url: str) -> None:
    """The request is durable when it returns: a node that stops before the object wakes
    again leaves the restore to the next one, which does it before the constructor runs."""
    app = Application({"LEDGER": Ledger})
    async with serve(database_url, app, snapshot_every=2) as node:
        mark = (await (await node.client.get("/ledger/l?put=a&value=1")).json())["bookmark"]
        for n in range(5):
            await node.client.get(f"/ledger/l?put=k{n}&value={n}")
        response = await node.client.get(f"/ledger/l?restore={mark}")
        assert response.status == 200
        undo = await response.text()
    async with serve(database_url, app, hibernate_after=0.2) as node:
        seen = await (await node.client.get("/ledger/l")).json()
        assert seen["storage"] == {"a": "1"}
        assert seen["constructed_with"] == {"a": "1"}  # restored before the constructor ran
        response = await node.client.get(f"/ledger/l?restore={undo}&abort=1")
        assert response.status == 503
        seen = await (await node.client.get("/ledger/l")).json()
        assert seen["storage"] == {"a": "1", **{f"k{n}": str(n) for n in range(5)}}
        object_id = str(node.runtime.env["LEDGER"].id_from_name("l"))
        # Hibernate with a pending restore: the snapshot carries it to the next wake.
        await node.client.get(f"/ledger/l?restore={mark}")
        activation = node.runtime.activations[object_id]
        await activation.closed
        assert (await replay(database_url, object_id)).pending_restore == mark
        seen = await (await node.client.get("/ledger/l")).json()
        assert seen["storage"] == {"a": "1"}
        live = snapshot.comparable(node.runtime.activations[object_id].state)
        assert snapshot.comparable(await replay(database_url, object_id)) == live
        assert snapshot.comparable(await fold_all(database_url, object_id)) == live
