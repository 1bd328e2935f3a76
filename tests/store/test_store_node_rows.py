"""A node's row beyond its lease: the address it listens on, the draining mark of a node on
its way out (which hosts an object nobody owns may be sent to), and the pruning of rows of
nodes long gone, against the real tables (each node a store of its own)."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from service.ports.cluster import LiveHost
from service.ports.records import InboxItem
from service.store.event_store import EventStore
from tests.store.helpers import Stores, object_id

#: The channel NOTIFYs for a node go to (``durable_channel_v1``).
CHANNEL = "SELECT durable_channel_v1($1)"


async def _live(stores: Stores, node_id: str, role: str = "host") -> EventStore:
    store = await stores.open(node_id)
    await store.join(None, role, 30)
    return store


async def _woken(sql: asyncpg.Connection, node_id: str) -> list[str]:
    """A listener on ``node_id``'s channel; the payloads it receives go to the list."""
    got: list[str] = []
    channel = await sql.fetchval(CHANNEL, node_id)
    await sql.add_listener(channel, lambda *args: got.append(args[3]))
    return got


async def test_the_address_is_recorded_once_the_server_listens(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    node = await _live(stores, "n")
    assert await sql.fetchval("SELECT address FROM nodes WHERE node_id = 'n'") is None
    await node.serving_at("127.0.0.1:40123")
    assert await sql.fetchval("SELECT address FROM live_nodes WHERE node_id = 'n'") == (
        "127.0.0.1:40123"
    )


async def test_a_draining_host_is_marked_until_it_stops_and_a_new_run_clears_the_mark(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    leaving = await _live(stores, "leaving")
    staying = await _live(stores, "staying")
    await _live(stores, "gateway", role="gateway")
    assert await staying.live_hosts() == [LiveHost("leaving"), LiveHost("staying")]

    await leaving.drain()
    # Still live (it keeps its lease and its objects until it stops), and marked.
    assert await staying.live_hosts() == [
        LiveHost("leaving", draining=True),
        LiveHost("staying"),
    ]
    marked = await sql.fetchval("SELECT draining_at FROM live_nodes WHERE node_id = 'leaving'")
    assert marked is not None
    await leaving.drain()  # once: the mark keeps the time the hand-over began
    assert await sql.fetchval("SELECT draining_at FROM nodes WHERE node_id = 'leaving'") == marked
    assert await leaving.heartbeat()

    # Its stop ends it: gone from the live hosts, the row keeps when it began to drain.
    await leaving.leave()
    assert await staying.live_hosts() == [LiveHost("staying")]
    row = await sql.fetchrow("SELECT draining_at, stopped_at FROM nodes WHERE node_id = 'leaving'")
    assert row["draining_at"] == marked and row["stopped_at"] >= marked
    # A new run of the id starts undrained.
    await _live(stores, "leaving")
    assert await staying.live_hosts() == [LiveHost("leaving"), LiveHost("staying")]
    assert await sql.fetchval("SELECT draining_at FROM nodes WHERE node_id = 'leaving'") is None


async def test_a_wake_is_passed_to_a_draining_host_only_when_it_was_chosen_as_one(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    gateway = await _live(stores, "gateway", role="gateway")
    host = await _live(stores, "host")
    listener = await asyncpg.connect(stores.database_url)
    try:
        woken = await _woken(listener, "host")
        oid = object_id("room")
        await gateway.register(oid, "CHAT", "room")
        assert await gateway.wake_on("host", [oid])
        await host.drain()
        # Chosen before it began to drain: refused, so the chooser reads the hosts again.
        assert not await gateway.wake_on("host", [oid])
        # Chosen knowing it drains (no other host is live): it gets the wake.
        assert await gateway.wake_on("host", [oid], draining=True)
        await listener.execute("SELECT 1")  # the notifications are in by now
        assert [json.loads(p)["object_ids"] for p in woken] == [[oid], [oid]]
    finally:
        await listener.close()


async def test_rows_of_nodes_long_gone_are_pruned_unless_something_refers_to_them(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    live = await _live(stores, "live")
    names = ["forgotten", "dead", "recent", "owner", "outbox", "socket", "asked", "closed"]
    for name in names:
        await sql.execute(
            "INSERT INTO nodes (node_id, lease_timeout, heartbeat_at) "
            "VALUES ($1, interval '5 seconds', now() - interval '2 hours')",
            name,
        )
    # Gone two hours ago: stopped, or silent since then (never swept), or just stopped.
    await sql.execute(
        "UPDATE nodes SET stopped_at = now() - interval '2 hours'"
        " WHERE node_id NOT IN ('live', 'dead', 'recent')"
    )
    await sql.execute("UPDATE nodes SET stopped_at = now() WHERE node_id = 'recent'")
    # What still refers to a node: an object it owns, outbox rows for it, a socket it held
    # that is open in the log, a request waiting in the inbox to reply to it. A socket it
    # held that is closed refers to it no more.
    await sql.execute(
        "INSERT INTO objects (object_id, binding, owner_node, owner_epoch) "
        "VALUES ($1, 'CHAT', 'owner', 1), ($2, 'CHAT', NULL, 1)",
        object_id("owned"),
        object_id("room"),
    )
    await sql.execute(
        "INSERT INTO outbox (node, object_id, socket_id, kind, text) "
        "VALUES ('outbox', $1, 's', 'text', 'hi')",
        object_id("room"),
    )
    await sql.execute(
        "INSERT INTO websockets (object_id, socket_id, node, closed_at) "
        "VALUES ($1, 'open', 'socket', NULL), ($1, 'done', 'closed', now())",
        object_id("room"),
    )
    request = {"url": "http://x/", "method": "GET", "headers": [], "body": ""}
    await live.enqueue(
        InboxItem(
            object_id("room"), "fetch", "", {**request, "request_id": "r", "reply_to": "asked"}
        )
    )

    assert sorted(await live.prune(3600)) == ["closed", "dead", "forgotten"]
    kept = await sql.fetch("SELECT node_id FROM nodes ORDER BY node_id")
    assert [r["node_id"] for r in kept] == ["asked", "live", "outbox", "owner", "recent", "socket"]
    # Once nothing refers to them, they go too; the live node never does.
    await sql.execute("UPDATE objects SET owner_node = NULL")
    await sql.execute("DELETE FROM outbox")
    await sql.execute("UPDATE websockets SET closed_at = now()")
    await sql.execute("DELETE FROM inbox")
    assert sorted(await live.prune(3600)) == ["asked", "outbox", "owner", "socket"]
    await asyncio.sleep(0.05)
    assert sorted(await live.prune(0.01)) == ["recent"]
    assert [r["node_id"] for r in await sql.fetch("SELECT node_id FROM nodes")] == ["live"]
    assert await live.heartbeat()
