"""Resume across a failover: the node that runs the feed is killed while a client of another
node keeps publishing through it; the survivor takes the feed over, and the first node's
client, reconnecting to the survivor, gets every message it missed, once, in order."""

from __future__ import annotations

import json

import aiohttp
import asyncpg
import pytest

from tests.cli.process import child_env, durable
from tests.resume.support import FEED_PATH, Follower, parse
from tests.resume.test_publish import published_rows
from tests.resume.test_resume_restart import lease_lapsed
from tests.support import eventually

pytestmark = pytest.mark.slow

#: Before the kill: published through the inbox, one turn each.
BEFORE = 40


async def feed_owner(sql: asyncpg.Connection) -> str | None:
    owner: str | None = await sql.fetchval(
        "SELECT owner_node FROM objects WHERE binding = 'FEED' AND name = 'room'"
    )
    return owner


async def test_a_resume_after_failover_gets_exactly_what_was_missed(
    database_url: str, sql: asyncpg.Connection
) -> None:
    env = child_env(database_url=database_url)

    def node(node_id: str, hibernate_after: str):  # type: ignore[no-untyped-def]
        return durable(
            *("serve", FEED_PATH, "--port", "0", "--node-id", node_id),
            *("--lease-timeout", "1", "--hibernate-after", hibernate_after),
            env=env,
        )

    async with (
        # The survivor lets the feed go when idle; the owner-to-be keeps it.
        node("survivor", "0.5") as survivor,
        node("owner", "60") as victim,
        aiohttp.ClientSession() as session,
    ):
        survivor_url, victim_url = await survivor.serving(), await victim.serving()
        bob = Follower(session, survivor_url, "room")
        await bob.connect()

        async def released() -> bool:
            return await feed_owner(sql) is None

        await eventually(released, timeout=10)
        ann = Follower(session, victim_url, "room")
        ann.last = 0  # everything from the start: the log is the oracle
        await ann.connect()
        assert await feed_owner(sql) == "owner"

        # Bob's frames reach the feed through the inbox, each its own turn.
        for n in range(1, BEFORE + 1):
            await bob.publish(f"before-{n}")
        await ann.receive_until_count(5)
        victim.process.kill()
        # What was already on its way reaches ann; then her connection drops.
        assert ann.ws is not None
        while (frame := await ann.ws.receive(timeout=30)).type in (
            aiohttp.WSMsgType.TEXT,
            aiohttp.WSMsgType.BINARY,
        ):
            ann.received.append(parse(frame))
            ann.last = ann.received[-1][0]
        seen_before = len(ann.received)
        # Published during the gap: written for the feed, run once the survivor has it.
        await bob.publish("gap", count=3)
        await lease_lapsed(database_url, "owner")

        async def taken_over() -> bool:
            return await feed_owner(sql) in ("survivor", None)

        await eventually(taken_over, timeout=10)
        ann.base_url = survivor_url
        await ann.connect()
        await bob.publish("live")

        async def all_published() -> bool:
            rows = await published_rows(database_url)
            return bool(rows) and json.loads(rows[-1]["data"])["data"] == "live"

        await eventually(all_published, timeout=15)
        rows = await published_rows(database_url)
        await ann.receive_until(rows[-1]["seq"], timeout=15)
        # The survivor's own client stayed connected throughout.
        assert bob.ws is not None and not bob.ws.closed
        await ann.ws.close()
        await bob.ws.close()

    # Every message the log holds, once, in order, across ann's two connections.
    assert ann.received == [(row["seq"], json.loads(row["data"])["data"]) for row in rows]
    assert len(ann.received) > seen_before
    datas = [data for _, data in ann.received]
    # Nothing bob sent was lost to the kill: the inbox kept it for the survivor.
    assert datas == [
        *(f"before-{n}" for n in range(1, BEFORE + 1)),
        "gap-1",
        "gap-2",
        "gap-3",
        "live",
    ]
