"""A reconnect storm: fifty clients publish into one room and keep losing their connections
(closing them, or dropping them without a Close) for a few seconds; each comes back with the
last seq it saw. In the end every client has every message of the log exactly once, in order."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest

from tests.cli.process import child_env, durable
from tests.resume.support import FEED_PATH, Follower, parse
from tests.resume.test_publish import published_rows
from tests.support import eventually

CLIENTS = 50
STORM_SECONDS = 4.0


async def read_all(follower: Follower, ws: aiohttp.ClientWebSocketResponse) -> None:
    """Keep every message of one connection until it ends (never cancelled mid-read)."""
    async for frame in ws:
        if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            follower.received.append(parse(frame))
            follower.last = follower.received[-1][0]


async def storm(
    follower: Follower, index: int, rng: random.Random, until: float
) -> tuple[int, int]:
    """Connect, publish a little, stay a little, drop the connection; again until ``until``.
    How many messages it sent, and how many connections it made."""
    loop = asyncio.get_running_loop()
    published = connections = 0
    while loop.time() < until:
        connections += 1
        ws = await follower.connect()
        reader = asyncio.ensure_future(read_all(follower, ws))
        for _ in range(rng.randrange(0, 4)):
            published += 1
            await follower.publish(f"c{index}-{published}")
        await asyncio.sleep(rng.uniform(0, 0.3))
        if rng.random() < 0.5:
            await ws.close()
        else:
            ws._response.connection.transport.abort()  # vanish, no Close frame
        await reader
    return published, connections


async def stable_count(database_url: str) -> int:
    """The number of published messages once it stops changing (the last frames of dropped
    connections may still be handled after their clients have gone)."""
    previous = -1
    while True:
        count = len(await published_rows(database_url))
        if count == previous:
            return count
        previous = count
        await asyncio.sleep(0.5)


@pytest.mark.slow
async def test_every_client_ends_with_every_message_once_in_order(database_url):
    env = child_env(database_url=database_url)
    async with durable("serve", FEED_PATH, "--port", "0", env=env) as node:
        url = await node.serving()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            followers = [Follower(session, url, "storm") for _ in range(CLIENTS)]
            for follower in followers:
                follower.last = 0  # from the start of the log: it is the oracle
            until = asyncio.get_running_loop().time() + STORM_SECONDS
            results = await asyncio.gather(
                *(storm(f, i, random.Random(i), until) for i, f in enumerate(followers))
            )
            await stable_count(database_url)
            # Everyone back, then one last message: the newest of the log.
            readers = [asyncio.ensure_future(read_all(f, await f.connect())) for f in followers]
            await followers[0].publish("end")
            await eventually(
                lambda: all(f.received[-1:] and f.received[-1][1] == "end" for f in followers),
                timeout=30,
            )
            rows = await published_rows(database_url)
            for follower in followers:
                await follower.ws.close()
            await asyncio.gather(*readers)
        assert await node.stop() == 0

    logged = [(row["seq"], json.loads(row["data"])["data"]) for row in rows]
    assert logged[-1][1] == "end"
    assert sum(sent for sent, _ in results) > CLIENTS  # the storm did publish
    assert all(connections >= 5 for _, connections in results)  # and reconnect
    assert len(logged) > CLIENTS
    for index, follower in enumerate(followers):
        assert follower.received == logged, f"client {index}"
    # Each client's messages in the order it sent them (those lost with a dropped
    # connection before the node read them were never published).
    for index in range(CLIENTS):
        mine = [int(d.split("-")[1]) for _, d in logged if d.startswith(f"c{index}-")]
        assert mine == sorted(mine)
