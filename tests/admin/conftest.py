"""Fixtures of the admin API tests: a chat room served by a real ``durable serve --admin``
process to real WebSocket clients, on a database of the module's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from pytest_postgresql.executors.noop import NoopExecutor

from tests.history_cli.support import Chat, chat_node, module_database


@pytest.fixture(scope="module")
def chat_database(postgresql_template: NoopExecutor) -> Iterator[str]:
    with module_database(postgresql_template) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chat(chat_database: str) -> AsyncIterator[Chat]:
    """The room ``CHAT/lobby`` after its scenario (dave comes and goes in CHAT/kitchen;
    then alice and bob join and talk, carol comes and goes, alice says bye), its node still
    serving alice and bob and the admin API (no token: loopback only, read-only)."""
    async with chat_node(
        chat_database,
        "--admin",
        "--snapshot-every",
        "5",
        "--hibernate-after",
        "600",
        "--heartbeat",
        "0",
    ) as room:
        await room.join("dave", room="kitchen")
        await room.leave("dave", room="kitchen")
        await room.mark("empty")
        await room.join("alice")
        await room.join("bob")
        await room.mark("both")
        await room.say("alice", "hello bob")
        await room.say("bob", "hi alice")
        await room.mark("talked")
        await room.join("carol")
        await room.mark("carol in")
        await room.leave("carol")
        await room.mark("carol out")
        await room.say("alice", "bye")
        await room.mark("end")
        yield room
