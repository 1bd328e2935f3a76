"""Requests, WebSocket upgrades and RPC calls that reach a node that does not run their
object: carried to the owner through the inbox, answered through the outbox once the turn
is committed. The owner keeps the object (nobody takes it from a live node); the socket
stays on the node the client reached; a paused owner times the request out with 504, and
a killed one leaves it to the survivor, which answers it."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.cluster.support import LEASE, MARGIN, Client, cluster_node
from tests.support import eventually

pytestmark = pytest.mark.slow

ROUTED = str(Path(__file__).parent / "apps" / "routed.py")

#: Long enough for a test to finish anything: no request waits on a routed reply that long.
TIMEOUT = aiohttp.ClientTimeout(total=30)


async def board_runs_on(http: aiohttp.ClientSession, node_url: str, sql: asyncpg.Connection) -> str:
    """Wake board ``b`` on the node at ``node_url`` (a GET there); its owner node."""
    async with http.get(f"{node_url}/board/b", timeout=TIMEOUT) as response:
        assert response.status == 200, await response.text()
    owner: str = await sql.fetchval("SELECT owner_node FROM objects WHERE name = 'b'")
    return owner


async def tables_empty(sql: asyncpg.Connection) -> bool:
    """Every routed row was consumed (inbox) and delivered (outbox)."""
    return (
        await sql.fetchval("SELECT (SELECT count(*) FROM inbox) + (SELECT count(*) FROM outbox)")
        == 0
    )


async def test_requests_through_another_node_get_the_owners_response(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=ROUTED) as n1,
        cluster_node(database_url, "n2", "--hibernate-after", "60", app=ROUTED) as n2,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, n1.url, sql) == "n1"
        epoch = await sql.fetchval("SELECT owner_epoch FROM objects WHERE name = 'b'")
        body = "first post: ünïcode, \x00 and all"
        async with http.post(
            f"{n2.url}/board/b", data=body.encode(), headers={"X-Test": "yes"}, timeout=TIMEOUT
        ) as response:
            assert response.status == 201, await response.text()
            assert response.headers["X-Board"] == "1 posts"
            assert await response.json() == {
                "method": "POST",
                "body": body,
                "header": "yes",
                "count": 1,
            }
        async with http.put(f"{n2.url}/board/b", data=b"second", timeout=TIMEOUT) as response:
            assert response.status == 201 and (await response.json())["count"] == 2
        async with http.get(f"{n2.url}/board/b", timeout=TIMEOUT) as response:
            assert response.status == 200
            assert await response.json() == {"posts": [body, "second"]}
        # Each ran once, on the owner, which kept the board all along.
        kinds = await sql.fetch(
            "SELECT data->>'method' AS method FROM events JOIN objects USING (object_id)"
            " WHERE name = 'b' AND type = 'request_received' ORDER BY seq"
        )
        assert [k["method"] for k in kinds] == ["GET", "POST", "PUT", "GET"]
        row = await sql.fetchrow("SELECT owner_node, owner_epoch FROM objects WHERE name = 'b'")
        assert (row["owner_node"], row["owner_epoch"]) == ("n1", epoch)
        await eventually(lambda: tables_empty(sql), timeout=5)


async def test_a_socket_opened_through_another_node_works_both_ways(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=ROUTED) as n1,
        cluster_node(database_url, "n2", "--hibernate-after", "60", app=ROUTED) as n2,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, n1.url, sql) == "n1"
        a = Client(await http.ws_connect(f"{n1.url}/board/b?who=a"))
        b = Client(await http.ws_connect(f"{n2.url}/board/b?who=b"))
        # The frames fetch sent right after the accept came first, in order.
        assert await b.received(2) == ["hello b", "welcome b"]
        assert await a.received(2) == ["hello a", "welcome a"]
        # The socket is held where its client connected: presence says so.
        rows = await sql.fetch("SELECT attachment->>'who' AS who, node FROM presence ORDER BY 1")
        assert [(r["who"], r["node"]) for r in rows] == [("a", "n1"), ("b", "n2")]
        # The node holding the socket answers the auto-response, without the board.
        await b.ws.send_str("ping")
        assert await b.received(3) == ["hello b", "welcome b", "pong"]
        for i in range(10):
            await b.ws.send_str(f"b{i}")
            await a.ws.send_str(f"a{i}")
        await a.received(22)
        await b.received(23)
        # Both saw the board's one order; each sender's frames in the order it sent them.
        assert a.frames[2:] == b.frames[3:]
        assert [f for f in b.frames if f.startswith("b:")] == [f"b:b{i}" for i in range(10)]
        assert [f for f in b.frames if f.startswith("a:")] == [f"a:a{i}" for i in range(10)]
        assert await sql.fetchval("SELECT owner_node FROM objects WHERE name = 'b'") == "n1"
        assert "b:ping" not in a.frames
        await b.close()

        async def b_left() -> bool:
            rows = await sql.fetch("SELECT attachment->>'who' AS who FROM presence")
            return [r["who"] for r in rows] == ["a"]

        await eventually(b_left, timeout=10)
        await eventually(lambda: tables_empty(sql), timeout=5)
        await a.close()


async def test_a_resume_through_another_node_gets_exactly_what_it_missed(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=ROUTED) as n1,
        cluster_node(database_url, "n2", "--hibernate-after", "60", app=ROUTED) as n2,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, n1.url, sql) == "n1"
        a = Client(await http.ws_connect(f"{n1.url}/board/b?who=a"))
        await a.received(2)
        for i in range(6):
            await a.ws.send_str(f"pub m{i}")
        published = [json.loads(f) for f in (await a.received(8))[2:]]
        assert [p["data"] for p in published] == [f"a:m{i}" for i in range(6)]
        seen = published[1]["seq"]  # the client saw m0 and m1, then lost its connection

        b = Client(await http.ws_connect(f"{n2.url}/board/b?who=b&after={seen}"))
        missed = [json.loads(f) for f in await b.received(4)]
        assert missed == published[2:]
        # Then live, after the missed ones: nothing twice, nothing skipped.
        await a.ws.send_str("pub live")
        await b.received(5)
        await asyncio.sleep(0.3)
        assert [json.loads(f)["data"] for f in b.frames] == [
            *(f"a:m{i}" for i in range(2, 6)),
            "a:live",
        ]
        assert (
            await sql.fetchval("SELECT node FROM presence WHERE attachment->>'who' = 'b'") == "n2"
        )
        await a.close()
        await b.close()


async def test_rpc_from_a_router_on_one_node_to_an_object_on_the_other(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=ROUTED) as n1,
        cluster_node(database_url, "n2", "--hibernate-after", "60", app=ROUTED) as n2,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, n1.url, sql) == "n1"

        async def call(path: str) -> Any:
            async with http.get(f"{n2.url}/call/b/{path}", timeout=TIMEOUT) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        assert await call("add?item=x") == {"result": 1}
        assert await call("add?item=y") == {"result": 2}
        assert await call("fail") == {"raised": "ValueError", "message": "no such post"}
        data = base64.b64encode(b"\x00\x01\xffbytes").decode()
        reversed_ = base64.b64decode((await call(f"blob?data={data}"))["result"])
        assert reversed_ == b"setyb\xff\x01\x00"
        methods = await sql.fetch(
            "SELECT data->>'method' AS method FROM events JOIN objects USING (object_id)"
            " WHERE name = 'b' AND type = 'rpc_called' ORDER BY seq"
        )
        assert [m["method"] for m in methods] == ["add", "add", "fail", "blob"]
        assert await sql.fetchval("SELECT owner_node FROM objects WHERE name = 'b'") == "n1"
        await eventually(lambda: tables_empty(sql), timeout=5)


async def test_a_paused_owner_times_a_routed_request_out_and_its_late_reply_is_dropped(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=ROUTED) as n1,
        cluster_node(
            database_url, "n2", "--hibernate-after", "60", "--route-timeout", "0.5", app=ROUTED
        ) as n2,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, n1.url, sql) == "n1"
        n1.process.send_signal(signal.SIGSTOP)
        try:
            began = time.monotonic()
            async with http.post(f"{n2.url}/board/b", data=b"late", timeout=TIMEOUT) as response:
                took = time.monotonic() - began
                assert response.status == 504
                assert "did not answer in time" in await response.text()
            assert took < LEASE
        finally:
            n1.process.send_signal(signal.SIGCONT)
        # The owner runs it when it wakes (it kept its lease), and its reply finds nobody.
        await eventually(lambda: tables_empty(sql), timeout=10)
        async with http.get(f"{n2.url}/board/b", timeout=TIMEOUT) as response:
            assert response.status == 200
            assert await response.json() == {"posts": ["late"]}
        assert await sql.fetchval("SELECT owner_node FROM objects WHERE name = 'b'") == "n1"


async def test_a_routed_request_waiting_on_a_killed_owner_is_answered_by_the_survivor(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "survivor", "--hibernate-after", "60", app=ROUTED) as survivor,
        cluster_node(database_url, "victim", "--hibernate-after", "60", app=ROUTED) as victim,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, victim.url, sql) == "victim"
        victim.process.send_signal(signal.SIGSTOP)
        waiting = asyncio.ensure_future(
            http.post(f"{survivor.url}/board/b", data=b"kept", timeout=TIMEOUT)
        )

        async def in_inbox() -> bool:
            return bool(await sql.fetchval("SELECT count(*) FROM inbox WHERE kind = 'fetch'"))

        await eventually(in_inbox, timeout=5)
        victim.process.kill()
        killed = time.monotonic()
        async with await waiting as response:
            assert response.status == 201, await response.text()
            assert (await response.json())["body"] == "kept"
        assert time.monotonic() - killed < LEASE + MARGIN
        assert await sql.fetchval("SELECT owner_node FROM objects WHERE name = 'b'") == "survivor"
        await eventually(lambda: tables_empty(sql), timeout=5)


async def test_a_socket_held_elsewhere_gets_the_auto_response_its_object_sets_later(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=ROUTED) as n1,
        cluster_node(database_url, "n2", "--hibernate-after", "60", app=ROUTED) as n2,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, n1.url, sql) == "n1"
        a = Client(await http.ws_connect(f"{n1.url}/board/b?who=a"))
        b = Client(await http.ws_connect(f"{n2.url}/board/b?who=b"))
        await a.received(2)
        await b.received(2)
        await b.ws.send_str("ping")
        assert (await b.received(3))[2] == "pong"

        # The board, running on n1, changes its pair: n2, which holds b, learns it.
        await a.ws.send_str("auto hi hello")
        assert (await b.received(4))[3] == "a:auto hi hello"
        await b.ws.send_str("hi")
        assert (await b.received(5))[4] == "hello"
        await b.ws.send_str("ping")  # no longer answered by the node: the board echoes it
        assert (await b.received(6))[5] == "b:ping"
        await a.ws.send_str("auto off")
        assert (await b.received(7))[6] == "a:auto off"
        await b.ws.send_str("hi")
        assert (await b.received(8))[7] == "b:hi"

        # Each auto-response was answered by n2 without the board: it recorded none of them.
        texts = await sql.fetch(
            "SELECT e.data->>'text' AS text FROM events AS e JOIN objects USING (object_id)"
            " WHERE name = 'b' AND e.type = 'message_received' ORDER BY e.seq"
        )
        assert [t["text"] for t in texts] == ["auto hi hello", "ping", "auto off", "hi"]
        assert a.frames[2:] == ["a:auto hi hello", "b:ping", "a:auto off", "b:hi"]
        await eventually(lambda: tables_empty(sql), timeout=5)
        await a.close()
        await b.close()
