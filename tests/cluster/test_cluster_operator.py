"""An operator's changes through the admin API of a node that does not run the object: the
restore, the close and the frame go to the owner through the inbox, run there as turns of
the object in order with its other work, are committed by the owner's flush and answered
through the outbox; the frames and closes reach sockets wherever they are held. A paused
owner times the change out with 504; an object nobody runs wakes on the node asked."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest

from service.history_root import open_history
from service.loader import load_application
from service.ports.history import HistoryService
from service.rerun.engine import rerun
from service.settings import Settings
from tests.cli.process import Durable, child_env
from tests.cluster.support import (
    LEASE,
    ROOM,
    Client,
    cluster_node,
    connect,
    owner,
    released,
    room_state,
    socket_of,
)
from tests.history_cli.support import run
from tests.support import eventually

pytestmark = pytest.mark.slow

ADMIN = ("--admin", "--admin-write", "--admin-operator", "grace")
BY = "grace (admin-api from 127.0.0.1)"
R = quote("ROOM/r", safe="")
TIMEOUT = aiohttp.ClientTimeout(total=30)


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[HistoryService]:
    async with open_history(Settings(database_url=database_url)) as service:
        yield service


async def change(
    http: aiohttp.ClientSession, node: Durable, path: str, body: Any
) -> tuple[int, dict[str, Any]]:
    """POST a change to ``node``'s admin API: its status and JSON answer."""
    async with http.post(f"{node.url}/admin/api{path}", json=body, timeout=TIMEOUT) as answer:
        return answer.status, await answer.json()


async def acked(client: Client, text: str) -> None:
    await client.send(text)
    await client.expect(f"ack {text}")


async def room_events(sql: asyncpg.Connection) -> list[tuple[int, str, dict[str, Any]]]:
    rows = await sql.fetch(
        "SELECT e.seq, e.type, e.data::jsonb AS data FROM events AS e"
        " JOIN objects AS o USING (object_id) WHERE o.name = 'r' ORDER BY e.seq"
    )
    return [(r["seq"], r["type"], json.loads(r["data"])) for r in rows]


async def test_changes_through_a_node_that_does_not_run_the_object(
    database_url: str, sql: asyncpg.Connection, history: HistoryService
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "60", *ADMIN) as n1,
        cluster_node(database_url, "n2", "--hibernate-after", "60", *ADMIN) as n2,
        aiohttp.ClientSession() as http,
    ):
        a = await connect(http, n1, "a")  # the room runs on n1, where a is held
        b = await connect(http, n2, "b")  # b is held by n2
        runs_on = await owner(sql)
        assert runs_on[0] == "n1"
        await acked(a, "one")
        at = (await history.find("ROOM/r")).last_seq
        await acked(b, "two")
        await acked(a, "three")
        a_socket, b_socket = await socket_of(sql, "a"), await socket_of(sql, "b")

        # Frames, to a socket held by the owner and to one held by the node asked.
        for socket_id, client in ((a_socket, a), (b_socket, b)):
            status, sent = await change(
                http, n2, f"/objects/{R}/sockets/{socket_id}/send", {"text": f"to {socket_id}"}
            )
            assert status == 200, sent
            assert sent["by"] == BY
            await client.expect(f"to {socket_id}")

        # A restore: storage goes back to its state after ``at``, on the owner.
        status, restored = await change(http, n2, f"/objects/{R}/restore", {"at": at})
        assert status == 200, restored
        assert restored["from_seq"] == at and restored["by"] == BY
        then = await history.state("ROOM/r", at=at)
        now = await history.state("ROOM/r")
        assert dict(now.state.storage) == dict(then.state.storage)
        assert now.seq == restored["seq"]
        assert (await owner(sql))[0] == "n1"  # nobody took the room from n1
        await acked(b, "four")  # the rebuilt room counts on from the restored count
        assert (await room_state(http, n1))["count"] == 2

        # Closes, of a socket held by the node asked and of one held by the owner.
        for socket_id, client, code in ((b_socket, b, 4001), (a_socket, a, 4002)):
            status, closed = await change(
                http,
                n2,
                f"/objects/{R}/sockets/{socket_id}/close",
                {"code": code, "reason": "enough"},
            )
            assert status == 200, closed
            await client.wait_closed()
            assert client.close_code == code

        async def nobody_left() -> bool:
            return await sql.fetchval("SELECT count(*) FROM presence") == 0

        await eventually(nobody_left, timeout=10)
        state = await room_state(http, n2)
        assert state["closed:b"] == [4001, True] and state["closed:a"] == [4002, True]
        status, again = await change(
            http, n2, f"/objects/{R}/sockets/{b_socket}/send", {"text": "gone?"}
        )
        assert status == 404, again
        # Still n1's: it claimed the room again to rebuild it after the restore.
        assert await owner(sql) == ("n1", runs_on[1] + 1)

        events = await room_events(sql)
        operator = [(t, d.get("socket_id")) for _, t, d in events if d.get("by") == BY]
        assert operator == [
            ("operator_message_sent", a_socket),
            ("operator_message_sent", b_socket),
            ("storage_restored", None),
            ("operator_close_sent", b_socket),
            ("operator_close_sent", a_socket),
        ]
        assert [s for s, _, _ in events] == list(range(1, len(events) + 1))
        assert await sql.fetchval("SELECT count(*) FROM inbox") == 0

    printed = await run("events", "ROOM/r", env=child_env(database_url=database_url))
    assert printed.code == 0, printed.stderr
    assert f'b: socket {b_socket} closed by {BY}: 4001 "enough"' in printed.stdout
    assert f'a: sent "to {a_socket}" to socket {a_socket} by {BY}' in printed.stdout
    assert f"storage restored to its state after seq {at} (2 keys) by {BY}" in printed.stdout
    report = await rerun(history, load_application(ROOM), "ROOM/r")
    assert report.divergence is None, report.divergence
    assert report.last_inbound == events[-1][0]


async def test_an_object_nobody_runs_wakes_on_the_node_asked_and_its_frame_reaches_the_holder(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "0.3", *ADMIN) as n1,
        cluster_node(database_url, "n2", "--hibernate-after", "60", *ADMIN) as n2,
        aiohttp.ClientSession() as http,
    ):
        a = await connect(http, n1, "a")
        await released(sql)  # the room sleeps; n1 holds a's socket
        a_socket = await socket_of(sql, "a")
        status, sent = await change(
            http, n2, f"/objects/{R}/sockets/{a_socket}/send", {"text": "wake up"}
        )
        assert status == 200, sent
        assert (await owner(sql))[0] == "n2"  # it woke where it was asked
        await a.expect("wake up")
        await acked(a, "still here")  # a's frames now go to n2, the owner
        (last,) = await sql.fetch(
            "SELECT e.seq, e.type FROM events AS e JOIN objects AS o USING (object_id)"
            " WHERE o.name = 'r' AND e.type = 'operator_message_sent'"
        )
        assert last["seq"] == sent["seq"]
        await a.close()


async def test_a_paused_owner_times_a_change_out_with_504(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "60", *ADMIN) as n1,
        cluster_node(
            database_url, "n2", "--hibernate-after", "60", "--route-timeout", "0.5", *ADMIN
        ) as n2,
        aiohttp.ClientSession() as http,
    ):
        a = await connect(http, n1, "a")
        b = await connect(http, n2, "b")
        assert (await owner(sql))[0] == "n1"
        b_socket = await socket_of(sql, "b")
        n1.process.send_signal(signal.SIGSTOP)
        try:
            began = time.monotonic()
            status, answer = await change(
                http, n2, f"/objects/{R}/sockets/{b_socket}/send", {"text": "late"}
            )
            took = time.monotonic() - began
        finally:
            n1.process.send_signal(signal.SIGCONT)
        assert status == 504, answer
        assert "did not answer within 0.5 s" in answer["error"]
        assert took < LEASE
        # The owner still does it once it runs again (it kept its lease): the frame arrives.
        await b.expect("late")
        assert (await owner(sql))[0] == "n1"
        await a.close()
        await b.close()


async def test_a_gateway_hands_changes_to_the_host_running_the_object(
    database_url: str, sql: asyncpg.Connection, history: HistoryService
) -> None:
    async with (
        cluster_node(database_url, "h", "--role", "host", "--hibernate-after", "60") as _,
        cluster_node(database_url, "g", "--role", "gateway", *ADMIN) as gateway,
        aiohttp.ClientSession() as http,
    ):
        a = await connect(http, gateway, "a")
        assert (await owner(sql))[0] == "h"
        await acked(a, "one")
        at = (await history.find("ROOM/r")).last_seq
        await acked(a, "two")
        a_socket = await socket_of(sql, "a")
        status, sent = await change(
            http, gateway, f"/objects/{R}/sockets/{a_socket}/send", {"text": "from the gateway"}
        )
        assert status == 200, sent
        await a.expect("from the gateway")
        status, restored = await change(http, gateway, f"/objects/{R}/restore", {"at": at})
        assert status == 200, restored
        await acked(a, "three")
        assert (await history.state("ROOM/r")).state.storage["count"] == 2
        status, closed = await change(
            http, gateway, f"/objects/{R}/sockets/{a_socket}/close", {"code": 4000}
        )
        assert status == 200, closed
        await a.wait_closed()
        assert a.close_code == 4000
        assert (await owner(sql))[0] == "h"
