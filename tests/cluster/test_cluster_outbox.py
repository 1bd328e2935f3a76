"""Output for sockets other nodes hold: a room runs on one node, a client of it sits on
another, and what the room sends that client travels through the outbox, committed with the
events that caused it. Each client sees every message once, in the room's order; a close
arrives with its code; a killed listener misses nothing; a fenced owner delivers nothing;
delivered rows are deleted."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import asyncpg
import pytest

from service.runtime.inbox_writes import NOT_RECORDED
from tests.cluster.support import (
    CHAT,
    LEASE,
    MARGIN,
    POSITIONS_LOCK,
    Client,
    cluster_node,
    messages,
    owner,
    released,
    socket_of,
)
from tests.support import eventually

pytestmark = pytest.mark.slow

ROUNDS = 40

# Refuses every commit that records a message starting with "boom".
REFUSE_BOOM = """
CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.type = 'message_received' AND NEW.data->>'text' LIKE 'boom%' THEN
    RAISE EXCEPTION 'refused by test trigger';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_boom BEFORE INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION refuse_boom();
"""


async def join(http: aiohttp.ClientSession, url: str, who: str) -> Client:
    """``who`` joins chat room ``r`` through the node at ``url``."""
    client = Client(await http.ws_connect(f"{url}/chat/r?who={who}"))
    await client.received(1)
    assert client.frames == [f"hello {who}"]
    return client


async def split_room(
    http: aiohttp.ClientSession, sql: asyncpg.Connection, holder: str, runner: str
) -> tuple[Client, Client]:
    """b joins through ``holder``, which lets the room go; then a joins through ``runner``,
    which runs the room from then on: b's socket is held by a node that does not run it."""
    b = await join(http, holder, "b")
    await released(sql)
    a = await join(http, runner, "a")
    return a, b


async def broadcasts(sql: asyncpg.Connection, a: Client, b: Client) -> list[str]:
    """The frames every client of the room must get: each recorded message, in log order."""
    a_socket, b_socket = await socket_of(sql, "a"), await socket_of(sql, "b")
    who = {a_socket: "a", b_socket: "b"}
    return [f"{who[socket]}:{text}" for socket, text in await messages(sql)]


async def outbox_rows(sql: asyncpg.Connection) -> int:
    count: int = await sql.fetchval("SELECT count(*) FROM outbox")
    return count


async def test_clients_on_two_nodes_see_every_message_once_in_the_rooms_order(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n2", "--hibernate-after", "0.3", app=CHAT) as n2,
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=CHAT) as n1,
        aiohttp.ClientSession() as http,
    ):
        a, b = await split_room(http, sql, n2.url, n1.url)
        runs_on = await owner(sql)
        assert runs_on[0] == "n1"
        for i in range(ROUNDS):
            await a.send(f"a{i}")
            await b.send(f"b{i}")
        await a.received(1 + 2 * ROUNDS)
        await b.received(1 + 2 * ROUNDS)

        expected = await broadcasts(sql, a, b)
        assert len(expected) == 2 * ROUNDS
        # Each client got every message once, in the order the room handled them (which
        # keeps each sender's order): b's through the outbox, a's from its own node.
        assert a.frames[1:] == expected
        assert b.frames[1:] == expected
        assert [f for f in expected if f.startswith("a:")] == [f"a:a{i}" for i in range(ROUNDS)]
        assert [f for f in expected if f.startswith("b:")] == [f"b:b{i}" for i in range(ROUNDS)]

        # Binary frames travel as they are.
        await a.send("bytes \x00\xff")
        assert await b.received_binary(1) == ["a:\x00\xff".encode()]

        # Delivered rows are deleted; the room never moved.
        await eventually(lambda: _empty(sql), timeout=5)
        assert await owner(sql) == runs_on
        await asyncio.sleep(0.3)
        assert len(a.frames) == len(b.frames) == 1 + 2 * ROUNDS  # nothing came twice
        assert len(a.binary) == len(b.binary) == 1
        await a.close()
        await b.close()


async def _empty(sql: asyncpg.Connection) -> bool:
    return await outbox_rows(sql) == 0


async def test_a_close_sent_to_another_nodes_socket_arrives_with_its_code(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "n2", "--hibernate-after", "0.3", app=CHAT) as n2,
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=CHAT) as n1,
        aiohttp.ClientSession() as http,
    ):
        a, b = await split_room(http, sql, n2.url, n1.url)
        await a.send("hi")
        await b.received(2)
        await a.send("kick b 4001")
        await b.wait_closed()
        assert (b.close_code, b.ws.close_code) == (4001, 4001)
        assert b.frames == ["hello b", "a:hi"]

        # The room hears the client's answer, through the inbox, and b leaves presence.
        async def left() -> bool:
            rows = await sql.fetch("SELECT attachment->>'who' AS who FROM presence")
            return [r["who"] for r in rows] == ["a"]

        await eventually(left, timeout=10)
        await eventually(lambda: _empty(sql), timeout=5)
        assert not a.closed
        await a.close()


async def test_a_killed_listener_of_the_holding_node_misses_nothing(
    database_url: str, sql: asyncpg.Connection
) -> None:
    listener = (
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'durable n2 listener'"
        " AND datname = current_database()"
    )
    async with (
        cluster_node(database_url, "n2", "--hibernate-after", "0.3", app=CHAT) as n2,
        cluster_node(database_url, "n1", "--hibernate-after", "60", app=CHAT) as n1,
        aiohttp.ClientSession() as http,
    ):
        a, b = await split_room(http, sql, n2.url, n1.url)
        await a.send("first")
        await b.received(2)

        (old_pid,) = [r["pid"] for r in await sql.fetch(listener)]
        assert await sql.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        # Sent at once: the first notifications are lost with the connection.
        for i in range(20):
            await a.send(f"a{i}")

        # Polls are a minute apart: only the read after the reconnect can do this.
        await b.received(22, timeout=15)
        assert b.frames == ["hello b", "a:first", *(f"a:a{i}" for i in range(20))]
        (new_pid,) = [r["pid"] for r in await sql.fetch(listener)]
        assert new_pid != old_pid
        await eventually(lambda: _empty(sql), timeout=5)
        await a.close()
        await b.close()


async def test_a_fenced_owners_output_never_reaches_another_nodes_client(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "fresh", "--hibernate-after", "1", app=CHAT) as fresh,
        cluster_node(database_url, "stale", "--hibernate-after", "60", app=CHAT) as stale,
        aiohttp.ClientSession() as http,
    ):
        a, b = await split_room(http, sql, fresh.url, stale.url)
        await a.send("before")
        await b.received(2)
        before = await owner(sql)
        assert before[0] == "stale"

        # The owner's next flush, with b's frame in it, is on its way when it stops: it
        # waits in the database for the positions lock.
        await sql.execute("SELECT pg_advisory_lock($1)", POSITIONS_LOCK)
        await a.send("held")

        async def flush_waiting() -> bool:
            return bool(
                await sql.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'durable stale' AND wait_event_type = 'Lock' AND datname = current_database()"
                )
            )

        await eventually(flush_waiting, timeout=5)
        stale.process.send_signal(signal.SIGSTOP)
        try:

            async def taken() -> bool:
                node, epoch = await owner(sql)
                return node == "fresh" and epoch > before[1]

            await eventually(taken, timeout=LEASE + MARGIN)
            # The paused owner's flush reaches the database now, after the takeover.
            await sql.execute("SELECT pg_advisory_unlock($1)", POSITIONS_LOCK)
            await asyncio.sleep(0.2)
        finally:
            stale.process.send_signal(signal.SIGCONT)
        assert await stale.exited(30) == 1
        await a.wait_closed()
        # Its flush was refused (epoch): nothing of it reached the outbox, nor b.
        assert [text for _, text in await messages(sql)] == ["before"]
        assert await outbox_rows(sql) == 0
        # The room goes on where b is, and b's frames come straight from its node.
        await b.send("after")
        await b.received(3)
        await asyncio.sleep(0.3)
        assert b.frames == ["hello b", "a:before", "b:after"]
        await b.close()


async def test_a_message_refused_three_times_closes_its_socket_on_the_holding_node(
    database_url: str, sql: asyncpg.Connection
) -> None:
    await sql.execute(REFUSE_BOOM)
    # A routed message whose commit was refused waits in the inbox for the owner's next
    # poll: polls are frequent here, so that its three attempts fit in the test's time.
    runner = ("--hibernate-after", "60", "--poll-interval", "0.3")
    async with (
        cluster_node(database_url, "n2", "--hibernate-after", "0.3", app=CHAT) as n2,
        cluster_node(database_url, "n1", *runner, app=CHAT) as n1,
        aiohttp.ClientSession() as http,
    ):
        a, b = await split_room(http, sql, n2.url, n1.url)
        await b.send("boom")
        # Dropped after its third refused commit: b hears of it, and may reconnect.
        await b.wait_closed(timeout=20)
        assert (b.close_code, b.ws.close_code) == (NOT_RECORDED[0], NOT_RECORDED[0])
        assert b.frames == ["hello b"]
        assert await sql.fetchval("SELECT count(*) FROM inbox") == 0
        # The others go on.
        await a.send("still here")
        await a.received(2)
        assert a.frames == ["hello a", "a:still here"]
        await a.close()
