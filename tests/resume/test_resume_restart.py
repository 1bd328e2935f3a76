"""Resume across a restart: the node process is stopped (SIGTERM) or killed (SIGKILL) while
messages are being published, and a new node on the same database serves the reconnect."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
import asyncpg
import pytest

from tests.cli.process import child_env, durable
from tests.resume.support import FEED_PATH, Follower, parse
from tests.resume.test_publish import published_rows


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_a_resume_after_a_restart_gets_exactly_what_was_missed(database_url, signum):
    env = child_env(database_url=database_url)
    async with aiohttp.ClientSession() as session:
        async with durable(
            "serve", FEED_PATH, "--port", "0", "--node-id", "first", "--lease-timeout", "1", env=env
        ) as node:
            url = await node.serving()
            ann, bob = Follower(session, url, "room"), Follower(session, url, "room")
            ann.last = 0  # everything from the start: the log is the oracle
            await ann.connect()
            await bob.connect()
            for n in range(1, 301):  # one turn each, many commits in flight
                await bob.publish(f"burst-{n}")
            await ann.receive_until_count(20)
            node.process.send_signal(signum)
            # Whatever was already on its way: a killed node sends nothing more, a stopped
            # one what its committed turns released, then 1001.
            while (frame := await ann.ws.receive(timeout=30)).type in (
                aiohttp.WSMsgType.TEXT,
                aiohttp.WSMsgType.BINARY,
            ):
                ann.received.append(parse(frame))
                ann.last = ann.received[-1][0]
            assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), frame
            if signum == signal.SIGTERM:
                assert (frame.type, frame.data) == (aiohttp.WSMsgType.CLOSE, 1001)
            await node.exited(timeout=30)
        seen_before_restart = len(ann.received)
        # A killed node's objects are another's once its lease has lapsed (a second here).
        await lease_lapsed(database_url, "first")

        async with durable(
            "serve", FEED_PATH, "--port", "0", "--node-id", "second", env=env
        ) as node:
            url = await node.serving()
            bob.base_url = ann.base_url = url
            await bob.connect()
            await bob.publish("while ann is away", count=3)
            await bob.receive_until_count(3)
            await ann.connect()
            await bob.publish("live")
            await ann.receive_until(bob.received[-1][0] + 1)
            rows = await published_rows(database_url)
            assert node.process.returncode is None
            assert await node.stop() == 0

    # Every message the log holds, once, in order; the burst's survivors included.
    assert ann.received == [(row["seq"], json.loads(row["data"])["data"]) for row in rows]
    assert len(ann.received) > seen_before_restart
    datas = [data for _, data in ann.received]
    burst = [data for data in datas if data.startswith("burst-")]
    assert burst == [f"burst-{n}" for n in range(1, len(burst) + 1)]
    assert datas[-4:] == [*(f"while ann is away-{n}" for n in (1, 2, 3)), "live"]
    if signum == signal.SIGTERM:
        assert len(burst) == 300  # a graceful stop handles what it had received


async def lease_lapsed(database_url: str, node_id: str) -> None:
    """Wait (10 s at most) until ``node_id`` is no longer a live node."""
    connection = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            query = "SELECT count(*) FROM live_nodes WHERE node_id = $1"
            if not await connection.fetchval(query, node_id):
                return
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    raise AssertionError(f"{node_id} still live 10 s after it stopped")
