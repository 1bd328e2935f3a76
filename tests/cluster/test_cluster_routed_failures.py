"""Routed work that fails where it runs: the caller hears of it, clearly and in time.

A request routed to the object's owner whose commits the database refuses is dropped after
a few attempts, and its caller gets a 503 saying so, not a timeout; an upgrade whose client
vanished before the owner accepted its socket leaves no socket open; an RPC call whose
callee's owner is killed is answered by the node that takes the callee over."""

from __future__ import annotations

import asyncio
import signal
import time
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from tests.cluster.support import LEASE, MARGIN, cluster_node
from tests.cluster.test_cluster_routed import ROUTED, TIMEOUT, board_runs_on, tables_empty
from tests.support import eventually

pytestmark = pytest.mark.slow

# A fault of the database the test made: it refuses every commit that records a request
# whose URL has "refuse" in it (the rest of the traffic commits).
REFUSE = """
CREATE FUNCTION refuse_marked_requests() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.type = 'request_received' AND NEW.data->>'url' LIKE '%refuse%' THEN
    RAISE EXCEPTION 'refused by the test''s trigger';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_marked_requests BEFORE INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION refuse_marked_requests();
"""


async def test_a_routed_request_whose_commits_are_refused_gets_a_503_not_a_timeout(
    database_url: str, sql: asyncpg.Connection
) -> None:
    await sql.execute(REFUSE)
    async with (
        cluster_node(database_url, "owner", "--hibernate-after", "60", app=ROUTED) as owner,
        cluster_node(database_url, "asker", "--hibernate-after", "60", app=ROUTED) as asker,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, owner.url, sql) == "owner"
        began = time.monotonic()
        async with http.post(
            f"{asker.url}/board/b?refuse=1", data=b"lost", timeout=TIMEOUT
        ) as response:
            took = time.monotonic() - began
            text = await response.text()
        print(f"answered {response.status} after {took:.3f} s: {text}")
        assert response.status == 503, text
        assert "could not record this request" in text
        # Well before the route timeout (30 s): the owner gave up on it and said so.
        assert took < 10
        assert "dropping inbox row" in owner.output
        # Nothing of it was recorded; its row is gone, its reply delivered; the board goes on.
        await eventually(lambda: tables_empty(sql), timeout=5)
        async with http.post(f"{asker.url}/board/b", data=b"kept", timeout=TIMEOUT) as response:
            assert response.status == 201, await response.text()
        async with http.get(f"{asker.url}/board/b", timeout=TIMEOUT) as response:
            assert await response.json() == {"posts": ["kept"]}
        assert await sql.fetchval("SELECT owner_node FROM objects WHERE name = 'b'") == "owner"


async def _metric(http: aiohttp.ClientSession, node_url: str, name: str) -> float:
    async with http.get(f"{node_url}/metrics", timeout=TIMEOUT) as response:
        for line in (await response.text()).splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_an_upgrade_whose_client_vanished_before_the_owner_replied_leaves_no_socket(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "owner", "--hibernate-after", "60", app=ROUTED) as owner,
        cluster_node(database_url, "asker", "--hibernate-after", "60", app=ROUTED) as asker,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, owner.url, sql) == "owner"
        # The owner is paused, so the upgrade waits in the inbox while its client goes away.
        owner.process.send_signal(signal.SIGSTOP)
        try:
            url = urlsplit(asker.url)
            _, writer = await asyncio.open_connection(url.hostname, url.port)
            writer.write(
                f"GET /board/b?who=gone HTTP/1.1\r\nHost: {url.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
            )
            await writer.drain()

            async def routed() -> bool:
                return bool(await sql.fetchval("SELECT count(*) FROM inbox WHERE kind = 'fetch'"))

            await eventually(routed, timeout=10)
            writer.transport.abort()  # the client vanishes: no close frame, no FIN dance
        finally:
            owner.process.send_signal(signal.SIGCONT)

        # The owner accepts the socket and replies; the asking node finds its client gone,
        # and the socket is closed in the log (its close handler runs) rather than open.
        async def closed() -> bool:
            row = await sql.fetchrow(
                "SELECT node, closed_at, close_code FROM websockets"
                " WHERE attachment->>'who' = 'gone'"
            )
            return row is not None and row["closed_at"] is not None

        await eventually(closed, timeout=10)
        row = await sql.fetchrow(
            "SELECT node, close_code, was_clean FROM websockets WHERE attachment->>'who' = 'gone'"
        )
        assert (row["node"], row["close_code"], row["was_clean"]) == ("asker", 1006, False)
        assert await sql.fetchval("SELECT count(*) FROM presence") == 0
        # Nothing stays behind on the asking node: no socket, no waiting caller, no rows.
        assert await _metric(http, asker.url, "durable_open_sockets") == 0
        assert "the client left before its WebSocket opened" in asker.output
        assert "Traceback" not in asker.output
        await eventually(lambda: tables_empty(sql), timeout=5)
        # The board goes on, and a client that stays gets its socket as usual.
        ws = await http.ws_connect(f"{asker.url}/board/b?who=stays")
        assert (await ws.receive(timeout=10)).data == "hello stays"
        await ws.close()


@pytest.mark.parametrize("killed", ["while the call waits", "just before the call"])
async def test_an_rpc_call_whose_callees_owner_is_killed_is_answered_by_the_survivor(
    database_url: str, sql: asyncpg.Connection, killed: str
) -> None:
    """The call waits in the inbox; once the owner's lease runs out, the survivor sweeps it,
    takes the board over, runs the call once and answers it: well within the route timeout,
    which is what a caller gets (OwnerTimeoutError, a 504 through a request) only if the
    takeover takes longer than that."""
    async with (
        cluster_node(database_url, "survivor", "--hibernate-after", "60", app=ROUTED) as survivor,
        cluster_node(database_url, "victim", "--hibernate-after", "60", app=ROUTED) as victim,
        aiohttp.ClientSession() as http,
    ):
        assert await board_runs_on(http, victim.url, sql) == "victim"
        if killed == "while the call waits":
            victim.process.send_signal(signal.SIGSTOP)
        else:
            victim.process.kill()
            await victim.exited(10)
        began = time.monotonic()
        calling = asyncio.ensure_future(
            http.get(f"{survivor.url}/call/b/add?item=x", timeout=TIMEOUT)
        )

        async def in_inbox() -> bool:
            return bool(await sql.fetchval("SELECT count(*) FROM inbox WHERE kind = 'rpc'"))

        await eventually(in_inbox, timeout=5)
        if killed == "while the call waits":
            victim.process.kill()
        async with await calling as response:
            assert response.status == 200, await response.text()
            assert await response.json() == {"result": 1}
        took = time.monotonic() - began
        print(f"answered after {took:.3f} s")
        assert took < LEASE + MARGIN
        # Run once, by the survivor, which owns the board now; nothing is left in transit.
        calls = await sql.fetch(
            "SELECT data->>'method' AS method FROM events JOIN objects USING (object_id)"
            " WHERE name = 'b' AND type = 'rpc_called'"
        )
        assert [c["method"] for c in calls] == ["add"]
        assert await sql.fetchval("SELECT owner_node FROM objects WHERE name = 'b'") == "survivor"
        assert await sql.fetchval("SELECT swept_by FROM nodes WHERE node_id = 'victim'") == (
            "survivor"
        )
        await eventually(lambda: tables_empty(sql), timeout=5)
