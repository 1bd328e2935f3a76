"""An operator's changes to a live object through the admin API, on one node: a restore, a
socket's close and a frame sent to a socket, each only with --admin-write, each run as a
turn of the object and recorded in its log with who did it, readable in ``durable events``,
and rerun without divergence."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair
from service.admin import shapes
from service.events import bookmarks
from service.history_root import open_history
from service.ports.history import HistoryService
from service.rerun.engine import rerun
from service.settings import Settings
from tests.admin.support import Answer, get, post, ref
from tests.cli.process import child_env
from tests.history_cli.support import run
from tests.support import Node, eventually, serve

BY = "grace (admin-api from 127.0.0.1)"


class Tally(DurableObject):
    """Counts frames in memory, from the count its constructor reads: a rebuilt object counts
    on from its storage's count. Each count is acknowledged and told to the others; a close
    is kept in storage."""

    def __init__(self, ctx, env) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx, env)
        self.count = ctx.storage.kv.get("count") or 0

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        who = request.query.get("who", "?")
        self.ctx.accept_websocket(server, tags=[f"user:{who}"])
        server.serialize_attachment({"username": who})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        if message == "alarm":
            await self.ctx.storage.set_alarm(time.time() * 1000 + 3_600_000)
        elif message == "slow":
            await asyncio.sleep(0.5)
        self.count += 1
        # A socket an operator closed is closing: it is no longer OPEN.
        others = [
            other
            for other in self.ctx.get_websockets()
            if other is not ws and other.ready_state == WebSocket.OPEN
        ]
        self.ctx.storage.kv.put({"count": self.count, "listeners": len(others)})
        ws.send(f"count {self.count}")
        for other in others:
            other.send(f"counted {self.count}")

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.ctx.storage.kv.put(f"closed:{ws.deserialize_attachment()['username']}", [code, reason])

    async def alarm(self) -> None:
        pass


APP = Application({"TALLY": Tally})
TALLY = ref("TALLY/t")


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[HistoryService]:
    async with open_history(Settings(database_url=database_url)) as service:
        yield service


def tally_node(database_url: str, **settings: Any) -> Any:
    settings.setdefault("admin", True)
    settings.setdefault("admin_operator", "grace")
    settings.setdefault("heartbeat", 0)
    return serve(database_url, APP, **settings)


def api(node: Node, path: str) -> str:
    return str(node.client.make_url(f"/admin/api{path}"))


async def count(ws: aiohttp.ClientWebSocketResponse, text: str = "tick") -> str:
    await ws.send_str(text)
    return await ws.receive_str(timeout=10)


async def socket_of(session: aiohttp.ClientSession, node: Node, who: str) -> str:
    found = await get(session, api(node, "/presence"), {"object": "TALLY/t"})
    (socket_id,) = [s["socket_id"] for s in found.body["sockets"] if s["user"] == who]
    return str(socket_id)


async def events_of(session: aiohttp.ClientSession, node: Node) -> list[dict[str, Any]]:
    page = await get(session, api(node, f"/objects/{TALLY}/events"), {"limit": "1000"})
    assert page.status == 200, page.body
    events: list[dict[str, Any]] = page.body["events"]
    return events


async def printed(database_url: str) -> str:
    result = await run("events", "TALLY/t", env=child_env(database_url=database_url))
    assert result.code == 0, result.stderr
    return result.stdout


async def test_a_restore_puts_storage_back_and_the_object_is_rebuilt_on_it(
    database_url: str, history: HistoryService
) -> None:
    async with (
        tally_node(database_url, admin_write=True) as node,
        aiohttp.ClientSession() as session,
    ):
        ws = await node.client.ws_connect("/tally/t?who=ada")
        assert await count(ws) == "count 1"
        assert await count(ws, "alarm") == "count 2"
        at = (await history.find("TALLY/t")).last_seq
        for n in (3, 4, 5):
            assert await count(ws) == f"count {n}"
        await ws.send_str("alarm")  # a later alarm, which the restore takes back
        await ws.receive_str(timeout=10)
        before = (await history.find("TALLY/t")).last_seq

        done = await post(session, api(node, f"/objects/{TALLY}/restore"), {"at": at})
        assert done.status == 200, done.body
        restored = shapes.RestoredShape.model_validate(done.body)
        assert (restored.seq, restored.from_seq, restored.by) == (before + 1, at, BY)
        assert restored.bookmark == bookmarks.of_seq(at)

        # The state is the one after ``at``: storage and the alarm.
        now = await get(session, api(node, f"/objects/{TALLY}/state"))
        then = await get(session, api(node, f"/objects/{TALLY}/state"), {"at": str(at)})
        assert now.body["storage"] == then.body["storage"]
        assert now.body["alarm_ms"] == then.body["alarm_ms"] == restored.alarm_ms is not None
        assert restored.keys == len(then.body["storage"]) == 2
        # The socket stayed open; the object was rebuilt on the restored count.
        assert await count(ws) == "count 3"

        # Again, by bookmark and by time: the same state each time.
        for point in (bookmarks.of_seq(at), (await history.events("TALLY/t")).events[at - 1]):
            given = point if isinstance(point, str) else point.recorded_at.isoformat()
            again = await post(session, api(node, f"/objects/{TALLY}/restore"), {"at": given})
            assert again.status == 200, again.body
            assert again.body["from_seq"] == at
            assert await count(ws) == "count 3"
        await ws.close()

        events = await events_of(session, node)
        (first,) = [e for e in events if e["seq"] == restored.seq]
        assert first["type"] == "storage_restored" and first["data"]["by"] == BY
        assert first["text"] == f"storage restored to its state after seq {at} (2 keys) by {BY}"
    assert f"storage_restored  storage restored to its state after seq {at} (2 keys) by {BY}" in (
        await printed(database_url)
    )
    report = await rerun(history, APP, "TALLY/t")
    assert report.divergence is None, report.divergence
    assert report.last_inbound == (await history.find("TALLY/t")).last_seq


async def test_a_closed_socket_gets_the_code_leaves_presence_and_its_close_handler_runs(
    database_url: str, history: HistoryService
) -> None:
    async with (
        tally_node(database_url, admin_write=True) as node,
        aiohttp.ClientSession() as session,
    ):
        ada = await node.client.ws_connect("/tally/t?who=ada")
        bob = await node.client.ws_connect("/tally/t?who=bob")
        assert await count(ada) == "count 1"
        assert await bob.receive_str(timeout=10) == "counted 1"
        socket_id = await socket_of(session, node, "bob")

        done = await post(
            session,
            api(node, f"/objects/{TALLY}/sockets/{socket_id}/close"),
            {"code": 4001, "reason": "spam"},
        )
        assert done.status == 200, done.body
        closed = shapes.SocketActionShape.model_validate(done.body)
        assert (closed.socket_id, closed.by) == (socket_id, BY)
        message = await bob.receive(timeout=10)
        assert (message.type, message.data, message.extra) == (
            aiohttp.WSMsgType.CLOSE,
            4001,
            "spam",
        )
        await bob.close()

        async def bob_left() -> bool:
            sockets = await get(session, api(node, "/presence"), {"object": "TALLY/t"})
            return [s["user"] for s in sockets.body["sockets"]] == ["ada"]

        await eventually(bob_left, timeout=10)
        # The close handler ran, with the code and reason sent (as after ws.close()).
        state = await get(session, api(node, f"/objects/{TALLY}/state"))
        assert state.body["storage"]["closed:bob"] == [4001, "spam"]
        assert await count(ada) == "count 2"  # and ada is told of nobody else now

        again = await post(
            session, api(node, f"/objects/{TALLY}/sockets/{socket_id}/close"), {"code": 1000}
        )
        assert again.status == 404
        assert again.body["error"].startswith(f"socket {socket_id} is not open on this object")
        await ada.close()

        kinds = [(e["type"], e["socket_id"]) for e in await events_of(session, node)]
        operator = kinds.index(("operator_close_sent", socket_id))
        assert kinds[operator + 1 :].index(("websocket_closed", socket_id)) >= 0
        (event,) = [e for e in await events_of(session, node) if e["seq"] == closed.seq]
        assert event["data"] == {"socket_id": socket_id, "code": 4001, "reason": "spam", "by": BY}
        assert event["sender"] == "bob"
    assert f'bob: socket {socket_id} closed by {BY}: 4001 "spam"' in await printed(database_url)
    report = await rerun(history, APP, "TALLY/t")
    assert report.divergence is None, report.divergence


async def test_a_socket_closing_is_not_open_to_the_object_and_the_rerun_agrees(
    database_url: str, history: HistoryService
) -> None:
    async with (
        tally_node(database_url, admin_write=True) as node,
        aiohttp.ClientSession() as session,
    ):
        ada = await node.client.ws_connect("/tally/t?who=ada")
        bob = await node.client.ws_connect("/tally/t?who=bob")
        assert await count(ada) == "count 1"
        assert await bob.receive_str(timeout=10) == "counted 1"
        socket_id = await socket_of(session, node, "bob")
        # While ada's slow turn runs, the close and ada's next frame queue up behind it, in
        # that order: the frame's turn runs between the close and its end (bob's close
        # reaches the object only once the close is committed and sent).
        await ada.send_str("slow")
        await asyncio.sleep(0.1)
        closing = asyncio.ensure_future(
            post(session, api(node, f"/objects/{TALLY}/sockets/{socket_id}/close"), {})
        )
        await asyncio.sleep(0.1)
        await ada.send_str("tick")
        assert (await closing).status == 200
        assert await ada.receive_str(timeout=10) == "count 2"
        assert await ada.receive_str(timeout=10) == "count 3"
        await ada.close()
        kinds = [e["type"] for e in await events_of(session, node)]
        closed = kinds.index("operator_close_sent")
        assert kinds[closed + 1 : closed + 3] == ["message_received", "storage_put"]
        state = await get(session, api(node, f"/objects/{TALLY}/state"))
        assert state.body["storage"]["listeners"] == 0  # bob was closing, not open
    report = await rerun(history, APP, "TALLY/t")
    assert report.divergence is None, report.divergence


async def test_a_frame_sent_reaches_the_client_and_is_recorded(
    database_url: str, history: HistoryService
) -> None:
    async with (
        tally_node(database_url, admin_write=True) as node,
        aiohttp.ClientSession() as session,
    ):
        ada = await node.client.ws_connect("/tally/t?who=ada")
        assert await count(ada) == "count 1"
        socket_id = await socket_of(session, node, "ada")
        send = api(node, f"/objects/{TALLY}/sockets/{socket_id}/send")

        text = await post(session, send, {"text": "server restarts at 18:00 — sorry"})
        assert text.status == 200, text.body
        assert await ada.receive_str(timeout=10) == "server restarts at 18:00 — sorry"
        binary = await post(session, send, {"base64": base64.b64encode(b"\x00\xff").decode()})
        assert binary.status == 200, binary.body
        assert await ada.receive_bytes(timeout=10) == b"\x00\xff"
        assert binary.body["seq"] == text.body["seq"] + 1
        assert await count(ada) == "count 2"  # the object went on as before
        await ada.close()

        events = {e["seq"]: e for e in await events_of(session, node)}
        first, second = events[text.body["seq"]], events[binary.body["seq"]]
        assert first["type"] == second["type"] == "operator_message_sent"
        assert first["data"]["by"] == second["data"]["by"] == BY
        assert (
            first["text"]
            == f'sent "server restarts at 18:00 — sorry" to socket {socket_id} by {BY}'
        )
        assert second["text"] == f"sent <2 bytes binary> to socket {socket_id} by {BY}"

        unknown = await post(
            session, api(node, f"/objects/{TALLY}/sockets/{'0' * 32}/send"), {"text": "x"}
        )
        assert unknown.status == 404
    assert f"ada: sent <2 bytes binary> to socket {socket_id} by {BY}" in await printed(
        database_url
    )
    report = await rerun(history, APP, "TALLY/t")
    assert report.divergence is None, report.divergence


async def test_a_hibernated_object_wakes_for_a_frame_and_records_it_in_order(
    database_url: str,
) -> None:
    async with (
        tally_node(database_url, admin_write=True, hibernate_after=0.3) as node,
        aiohttp.ClientSession() as session,
    ):
        ada = await node.client.ws_connect("/tally/t?who=ada")
        assert await count(ada) == "count 1"
        socket_id = await socket_of(session, node, "ada")
        await eventually(lambda: not node.runtime.activations, timeout=10)
        done = await post(
            session, api(node, f"/objects/{TALLY}/sockets/{socket_id}/send"), {"text": "awake"}
        )
        assert done.status == 200, done.body
        assert await ada.receive_str(timeout=10) == "awake"
        events = await events_of(session, node)
        assert events[-1]["seq"] == done.body["seq"]
        assert events[-1]["type"] == "operator_message_sent"
        await ada.close()


async def test_every_change_is_refused_while_the_api_is_read_only(database_url: str) -> None:
    async with tally_node(database_url) as node, aiohttp.ClientSession() as session:
        ada = await node.client.ws_connect("/tally/t?who=ada")
        assert await count(ada) == "count 1"
        socket_id = await socket_of(session, node, "ada")
        for path, body in (
            (f"/objects/{TALLY}/restore", {"at": 1}),
            (f"/objects/{TALLY}/sockets/{socket_id}/close", {"code": 1000}),
            (f"/objects/{TALLY}/sockets/{socket_id}/send", {"text": "x"}),
        ):
            answer = await post(session, api(node, path), body)
            assert answer.status == 403, path
            assert answer.body["error"].startswith("the admin API is read-only: start the node")
        assert await count(ada) == "count 2"  # still open, and nothing else happened
        events = await events_of(session, node)
        assert not [e for e in events if "by" in e["data"]]
        await ada.close()


BAD_BODIES = [
    ("restore", {}, "at is required: a seq"),
    ("restore", {"at": True}, "at is required: a seq"),
    ("restore", {"at": "soon"}, "at 'soon' is neither a seq nor an ISO 8601 time"),
    ("restore", {"at": 999}, "TALLY/t has events 1 to"),
    ("restore", {"at": 1, "as": "x"}, "unknown field 'as': a restore takes at"),
    ("restore", [1], "the body must be a JSON object"),
    ("close", {"code": 1005}, "code must be a close code from 1000 to 4999, except"),
    ("close", {"code": 999}, "code must be a close code from 1000 to 4999, except"),
    (
        "close",
        {"code": "4000"},
        'code must be a close code from 1000 to 4999, except 1004, 1005, 1006 and 1015, not "4000"',
    ),
    ("close", {"reason": "é" * 62}, "reason is 124 bytes of UTF-8: a close reason has at most 123"),
    ("close", {"reason": 5}, "reason must be a string, not 5"),
    ("close", {"reason": "a\x00b"}, "reason cannot contain the NUL character"),
    ("close", {"code": 1000, "why": "x"}, "unknown field 'why': a close takes code and reason"),
    ("send", {}, "give exactly one of text (a text frame) and base64 (a binary frame)"),
    ("send", {"text": "a", "base64": "YQ=="}, "give exactly one of text"),
    ("send", {"text": 5}, "text must be a string, not 5"),
    ("send", {"base64": "not base64!"}, "base64 is not valid base64"),
    ("send", {"text": "x" * 1025}, "the frame is 1025 bytes: a frame has at most 1024"),
    ("send", {"data": "x"}, "unknown field 'data': a send takes text or base64"),
]


async def test_a_bad_body_is_a_400_saying_what_to_give(database_url: str) -> None:
    async with (
        tally_node(database_url, admin_write=True, max_message_bytes=1024) as node,
        aiohttp.ClientSession() as session,
    ):
        ada = await node.client.ws_connect("/tally/t?who=ada")
        assert await count(ada) == "count 1"
        socket_id = await socket_of(session, node, "ada")
        last = len(await events_of(session, node))
        for action, body, message in BAD_BODIES:
            path = (
                f"/objects/{TALLY}/restore"
                if action == "restore"
                else f"/objects/{TALLY}/sockets/{socket_id}/{action}"
            )
            answer: Answer = await post(session, api(node, path), body)
            assert answer.status == 400, (action, body, answer.body)
            assert answer.body["error"].startswith(message), (action, body, answer.body)
        # Nothing was done: the log is as it was, and the socket open.
        assert len(await events_of(session, node)) == last
        assert await count(ada) == "count 2"
        await ada.close()
