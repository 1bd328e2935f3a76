"""A dead node's objects and sockets are taken over by a survivor; a stale owner that comes
back is fenced out and shows its clients nothing."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import asyncpg
import pytest

from tests.cluster.support import (
    LEASE,
    MARGIN,
    POSITIONS_LOCK,
    closes,
    cluster_node,
    connect,
    messages,
    owner,
    released,
    room_state,
    said,
    socket_of,
)
from tests.support import eventually

pytestmark = pytest.mark.slow


async def test_a_killed_owners_room_and_sockets_are_taken_over_by_the_survivor(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        # The survivor lets the room go when idle; the owner-to-be keeps it.
        cluster_node(database_url, "survivor", "--hibernate-after", "1") as survivor,
        cluster_node(database_url, "owner", "--hibernate-after", "60") as victim,
        aiohttp.ClientSession() as http,
    ):
        a = await connect(http, survivor, "a")
        await released(sql)
        b = await connect(http, victim, "b")
        before = await owner(sql)
        assert before[0] == "owner"
        # Acknowledged: each ack left only after its message was committed.
        for i in range(10):
            await b.send(f"b{i}")
        await b.send("alarm 2")
        await b.expect("ack alarm 2")
        await a.send("a0")  # through the inbox, to the owner

        async def routed() -> bool:
            return len(await messages(sql)) == 12

        await eventually(routed, timeout=10)
        b_socket = await socket_of(sql, "b")

        victim.process.kill()
        killed = time.monotonic()

        async def taken() -> bool:
            node, epoch = await owner(sql)
            return node == "survivor" and epoch > before[1]

        await eventually(taken, timeout=LEASE + MARGIN, interval=0.01)
        took = time.monotonic() - killed

        async def closed_in_the_log() -> bool:
            return any(c["socket_id"] == b_socket for c in await closes(sql))

        await eventually(closed_in_the_log, timeout=MARGIN)
        (close,) = [c for c in await closes(sql) if c["socket_id"] == b_socket]
        assert (close["code"], close["was_clean"]) == (1006, False)
        present = await sql.fetch("SELECT attachment->>'who' AS who FROM presence")
        assert [r["who"] for r in present] == ["a"]
        swept = await sql.fetchrow("SELECT swept_at, swept_by FROM nodes WHERE node_id = 'owner'")
        assert swept["swept_at"] is not None and swept["swept_by"] == "survivor"

        # The dead owner's alarm fires on the survivor.
        async def alarm_fired() -> bool:
            return (await room_state(http, survivor)).get("alarm") == "fired"

        await eventually(alarm_fired, timeout=10, interval=0.2)
        # Rebuilt from the log: every acknowledged message, the routed one, the close.
        state = await room_state(http, survivor)
        kept = [state[f"m{n:05d}"] for n in range(1, state["count"] + 1)]
        assert kept == [*(f"b:b{i}" for i in range(10)), "b:alarm 2", "a:a0"]
        assert state["closed:b"] == [1006, False]
        # The survivor's own client goes on, the room now running where it is.
        await a.send("a1")
        await a.expect("ack a1")
        await a.close()
        print(f"taken over {took:.2f} s after the kill (lease {LEASE} s)")


async def test_a_paused_owner_is_fenced_out_and_shows_its_clients_nothing(
    database_url: str, sql: asyncpg.Connection, postgresql: object
) -> None:
    async with (
        cluster_node(database_url, "fresh", "--hibernate-after", "1") as fresh,
        cluster_node(database_url, "stale", "--hibernate-after", "60") as stale,
        aiohttp.ClientSession() as http,
    ):
        b = await connect(http, fresh, "b")
        await released(sql)
        a = await connect(http, stale, "a")
        await a.send("before")
        await a.expect("ack before")
        before = await owner(sql)
        assert before[0] == "stale"

        # The owner's next write is on its way when it stops: it waits in the database.
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
            # The other node sweeps it and claims the room (no claim waits on that lock).
            async def taken() -> bool:
                node, epoch = await owner(sql)
                return node == "fresh" and epoch > before[1]

            await eventually(taken, timeout=LEASE + MARGIN)
            swept_by = await sql.fetchval("SELECT swept_by FROM nodes WHERE node_id = 'stale'")
            assert swept_by == "fresh"
            # The paused owner's write reaches the database now, after the takeover.
            await sql.execute("SELECT pg_advisory_unlock($1)", POSITIONS_LOCK)
            await asyncio.sleep(0.2)
        finally:
            stale.process.send_signal(signal.SIGCONT)
        # Declared dead, it stops, and says why.
        assert await stale.exited(30) == 1
        assert "declared dead" in stale.output
        await a.wait_closed()
        # Its write was refused (epoch): the frame held behind it never reached the client,
        # and the log has no trace of it.
        assert "ack held" not in a.frames
        recorded = [text for _, text in await messages(sql)]
        assert recorded == ["before"]
        # Nor of what its handler logged: the lines went with the refused commit.
        assert [line for _, line in await said(sql)] == ["a said before"]
        a_socket = await socket_of(sql, "a")
        (close,) = [c for c in await closes(sql) if c["socket_id"] == a_socket]
        assert (close["code"], close["was_clean"]) == (1006, False)
        # The room goes on where it now runs.
        await b.send("after")
        await b.expect("ack after")
        state = await room_state(http, fresh)
        assert [state["m00001"], state["m00002"]] == ["a:before", "b:after"]
        assert state["closed:a"] == [1006, False]
        assert [line for _, line in await said(sql)] == ["a said before", "b said after"]
        await b.close()
