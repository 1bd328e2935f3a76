"""Helpers shared by the test suites: a real node on a real socket, and log inspection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.api.application import Application
from service.app import create_app, server_options
from service.events.fold import ObjectState
from service.events.types import Event
from service.gateway import keys
from service.history import replay as history_replay
from service.runtime import node as runtime_node
from service.settings import Settings
from service.store.event_store import EventStore


@dataclass
class Node:
    """A running node: an aiohttp test client on a real port, and its parts."""

    client: TestClient
    webapp: web.Application
    settings: Settings

    @property
    def runtime(self) -> runtime_node.Node:
        return cast(runtime_node.Node, self.webapp[keys.NODE])


@contextlib.asynccontextmanager
async def serve(
    database_url: str, application: Application, **settings: Any
) -> AsyncIterator[Node]:
    """Run ``application`` on a fresh node; ``settings`` override Settings fields."""
    settings.setdefault("hibernate_after", 60.0)
    settings.setdefault("node_id", "test-node")
    config = Settings(database_url=database_url, **settings)
    webapp = create_app(config, application)
    server = TestServer(webapp)
    # TestClient starts its server without options: started here, with the node's own.
    await server.start_server(**server_options(config))
    async with TestClient(server) as client:
        yield Node(client, webapp, config)


async def replay(database_url: str, object_id: str) -> ObjectState:
    """The state of an object as its log alone defines it (snapshot + events after it)."""
    store = EventStore(database_url, "replay")
    await store.open()
    try:
        replayed = await history_replay.state(store, object_id)
    finally:
        await store.close()
    return replayed.state


async def fold_all(database_url: str, object_id: str) -> ObjectState:
    """The state from every event since seq 1, ignoring snapshots: the one replay, given a
    log that has none, so a snapshot that disagrees with the events behind it shows."""
    store = EventStore(database_url, "replay")
    await store.open()
    try:
        replayed = await history_replay.state(_WithoutSnapshots(store), object_id)
    finally:
        await store.close()
    return replayed.state


class _WithoutSnapshots:
    """A log reader that hides the snapshots of the log it reads."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def snapshot_at(self, object_id: str, until_seq: int) -> None:
        return None

    def events_between(
        self, object_id: str, after_seq: int, until_seq: int, page: int = 10_000
    ) -> AsyncIterator[list[Event]]:
        return self._store.events_between(object_id, after_seq, until_seq, page)

    async def seq_at(self, object_id: str, at: datetime) -> int:
        return await self._store.seq_at(object_id, at)


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0, interval: float = 0.02
) -> None:
    """Wait until ``check()`` is true; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result  # type: ignore[misc]
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
