"""Helpers of the store tests: simulated nodes, well-formed ids, appends and row reads."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg

from service.events import types
from service.events.log import Append, Claim
from service.store.event_store import EventStore


class Stores:
    """Opens event stores (one per simulated node) and closes them all at the end."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._opened: list[EventStore] = []

    async def open(self, node_id: str = "node-a", **options: Any) -> EventStore:
        store = EventStore(self.database_url, node_id, **options)
        await store.open()
        self._opened.append(store)
        return store

    async def close(self) -> None:
        for store in reversed(self._opened):
            await store.close()
        self._opened.clear()


def object_id(n: int | str) -> str:
    """A well-formed object id (64 lowercase hex characters) derived from ``n``."""
    return hashlib.sha256(str(n).encode()).hexdigest()


def put(key: str, value: Any = 1) -> types.StoragePut:
    """A storage write whose encoded value is plain JSON."""
    return types.StoragePut(entries={key: value})


def puts(count: int, prefix: str = "k") -> list[types.Event]:
    return [put(f"{prefix}{i}", i) for i in range(count)]


def after(claim: Claim, seq: int, events: list[types.Event], **fields: Any) -> Append:
    """An append of ``events`` by the holder of ``claim``, expecting the object at ``seq``."""
    return Append(claim.object_id, claim.epoch, seq, events, **fields)


async def seqs(sql: asyncpg.Connection, oid: str) -> list[int]:
    rows = await sql.fetch("SELECT seq FROM events WHERE object_id = $1 ORDER BY seq", oid)
    return [r["seq"] for r in rows]


async def last_seq(sql: asyncpg.Connection, oid: str) -> int | None:
    value = await sql.fetchval("SELECT last_seq FROM objects WHERE object_id = $1", oid)
    return None if value is None else int(value)
