"""/metrics of a running node: objects live and hibernated, sockets, events, latencies."""

from __future__ import annotations

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.process import ECHO, child_env, durable
from tests.support import eventually

NAMES = (
    "durable_live_objects",
    "durable_hibernated_objects",
    "durable_open_sockets",
    "durable_events_appended_total",
    "durable_commit_seconds_count",
    "durable_commit_seconds_sum",
    "durable_wake_seconds_count",
)


async def _scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }
    for name in NAMES:
        assert name in samples, f"{name} missing from /metrics"
    return samples


async def _until_hibernated(session: aiohttp.ClientSession, url: str) -> None:
    """Until the node's one object has left memory, its socket still open."""

    async def hibernated() -> bool:
        figures = await _scrape(session, url)
        return figures["durable_hibernated_objects"] == 1 and figures["durable_live_objects"] == 0

    await eventually(hibernated, timeout=15, interval=0.1)


async def test_metrics_follow_traffic_and_hibernation(database_url: str) -> None:
    env = child_env(database_url=database_url)
    args = ("serve", ECHO, "--port", "0", "--hibernate-after", "0.5", "--node-id", "metered")
    async with durable(*args, env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            before = await _scrape(session, url)
            assert before["durable_live_objects"] == 0
            assert before["durable_open_sockets"] == 0
            assert before["durable_events_appended_total"] == 0

            ws = await session.ws_connect(f"{url}/echo/metered")
            assert (await ws.receive_str(timeout=10)).startswith("id ")
            for n in range(3):
                await ws.send_str(f"m{n}")
                assert await ws.receive_str(timeout=10) == f"echo m{n}"
            busy = await _scrape(session, url)
            assert busy["durable_live_objects"] == 1
            assert busy["durable_open_sockets"] == 1
            assert busy["durable_hibernated_objects"] == 0
            # Accept, then three messages each with their storage write.
            assert busy["durable_events_appended_total"] >= 4
            assert busy["durable_commit_seconds_count"] >= 1
            assert busy["durable_commit_seconds_sum"] > 0
            assert busy["durable_wake_seconds_count"] == 1

            await _until_hibernated(session, url)
            asleep = await _scrape(session, url)
            assert asleep["durable_open_sockets"] == 1  # the client was not dropped

            await ws.send_str("wake")
            assert await ws.receive_str(timeout=10) == "echo wake"
            awake = await _scrape(session, url)
            assert awake["durable_wake_seconds_count"] == 2
            assert awake["durable_live_objects"] == 1
            assert awake["durable_hibernated_objects"] == 0
            assert awake["durable_events_appended_total"] > busy["durable_events_appended_total"]
            await ws.close()
        assert await node.stop() == 0


async def test_an_object_leaving_memory_counts_as_live_until_it_has_left(
    database_url: str,
) -> None:
    """live + hibernated covers every object with sockets, even mid-hibernation."""
    env = child_env(database_url=database_url)
    args = ("serve", ECHO, "--port", "0", "--hibernate-after", "0.5", "--node-id", "leaving")
    async with durable(*args, env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{url}/echo/leaving")
            assert (await ws.receive_str(timeout=10)).startswith("id ")
            await ws.send_str("m")
            assert await ws.receive_str(timeout=10) == "echo m"

            # Hold the object's row so that its hibernation cannot finish.
            blocker = await asyncpg.connect(database_url)
            try:
                holding = blocker.transaction()
                await holding.start()
                await blocker.execute("SELECT 1 FROM objects FOR UPDATE")

                async def leaving() -> bool:
                    figures = await _scrape(session, url)
                    return figures["durable_hibernations_total"] >= 1

                await eventually(leaving, timeout=15, interval=0.05)
                closing = await _scrape(session, url)
                assert closing["durable_live_objects"] == 1
                assert closing["durable_hibernated_objects"] == 0
                await holding.rollback()
            finally:
                await blocker.close()

            await _until_hibernated(session, url)
            await ws.close()
        assert await node.stop() == 0
