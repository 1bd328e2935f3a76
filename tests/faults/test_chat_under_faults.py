"""Chat under database faults: nothing is logged twice, lost, undelivered or reordered.

Twenty clients chat in four rooms of the chat example on a real node while the database
misbehaves; the accounting (``tests/faults/chat_load.py``) then compares the ``events`` table
with what every client sent and received (invariants 1, 8 and 9).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.chat_load import DatabaseFaults, Report, chat_application, chatting, serving

pytestmark = pytest.mark.slow

CLIENTS, ROOMS = 20, 4
#: Messages per second of each client. Under killed backends the rate sets how often a kill
#: lands while a flush is in flight: at 25, one run in five saw no harm done; at 50, none did.
RATE = 50.0
#: Through the outage every message waits for the database anyway: a lighter load will do.
OUTAGE_RATE = 25.0
#: Seconds of chat before and after a fault.
CALM = 1.0


def _check(report: Report) -> None:
    print(report.table())  # pytest shows it with the failure (or with -s)
    problems = report.problems()
    assert not problems, "\n".join(["", *problems, "", report.table()])


@pytest.mark.timeout(60)
async def test_the_accounting_finds_nothing_wrong_without_faults(database_url: str) -> None:
    async with (
        serving(database_url, chat_application(), shutdown_timeout=2.0) as node,
        chatting(node, clients=CLIENTS, rooms=ROOMS, rate=RATE) as load,
    ):
        await asyncio.sleep(3.0)  # the load's length
        report = await load.account(
            database_url, "chat without faults", drain_timeout=10, deliver_timeout=10
        )
    _check(report)
    assert report.sent > 0 and report.logged == report.sent


@pytest.mark.timeout(90)
async def test_chat_through_killed_backends(database_url: str) -> None:
    async with (
        serving(database_url, chat_application(), shutdown_timeout=2.0) as node,
        DatabaseFaults(database_url) as faults,
        chatting(node, clients=CLIENTS, rooms=ROOMS, rate=RATE) as load,
    ):
        await asyncio.sleep(CALM)
        await faults.kill_repeatedly(times=6, interval=0.5)
        await asyncio.sleep(CALM)
        report = await load.account(
            database_url,
            f"chat while the node's backends are killed 6 times 0.5 s apart "
            f"({CLIENTS} clients, {ROOMS} rooms, {RATE:g} messages/s each)",
            drain_timeout=20,
            deliver_timeout=10,
        )
        report.extra["backends killed per round"] = " ".join(map(str, faults.killed))
    _check(report)


#: The node's default commit retry window, and an outage half as long again.
COMMIT_RETRY_SECONDS = 10.0
OUTAGE_SECONDS = 15.0


@pytest.mark.timeout(120)
async def test_chat_through_an_outage_longer_than_the_commit_retry(database_url: str) -> None:
    async with (
        serving(database_url, chat_application(), shutdown_timeout=2.0) as node,
        DatabaseFaults(database_url) as faults,
        chatting(node, clients=CLIENTS, rooms=ROOMS, rate=OUTAGE_RATE) as load,
    ):
        assert node.settings.commit_retry_seconds == COMMIT_RETRY_SECONDS
        await asyncio.sleep(CALM)
        await faults.outage(OUTAGE_SECONDS)
        await asyncio.sleep(CALM)
        report = await load.account(
            database_url,
            f"chat through a {OUTAGE_SECONDS:g} s outage, commit retry "
            f"{COMMIT_RETRY_SECONDS:g} s ({CLIENTS} clients, {ROOMS} rooms, "
            f"{OUTAGE_RATE:g} messages/s each)",
            drain_timeout=20,
            deliver_timeout=10,
        )
    _check(report)
