"""Helpers of the store tests: simulated nodes, well-formed ids, appends and row reads."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from service.events import snapshot, types
from service.events.fold import ObjectState, apply
from service.ports.records import Append, Claim
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


# Test-only: hold every flush open a little after its rows take their positions, so that
# flushes of different nodes overlap and one that took positions first may commit last.
SLOW_INSERTS = """
CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(random() * 0.004);
  RETURN NULL;
END $$;
CREATE TRIGGER slow_insert AFTER INSERT ON events
  FOR EACH STATEMENT EXECUTE FUNCTION slow_insert();
"""


async def write_in_rounds(store: EventStore, node: int, objects: int, rounds: int) -> None:
    """A node's appends: ``rounds`` times, 1 to 3 events to half of its ``objects`` at once
    (a random half, seeded by ``node``), as concurrent flushes of many objects are."""
    claims = [await store.claim(object_id(f"{node}.{i}"), "CHAT", None) for i in range(objects)]
    seqs = [0] * objects
    rng = random.Random(node)
    for _ in range(rounds):
        futures = []
        for i in rng.sample(range(objects), k=objects // 2):
            count = rng.randint(1, 3)
            futures.append(store.append(after(claims[i], seqs[i], [put("k")] * count)))
            seqs[i] += count
        await asyncio.gather(*futures)


#: Seqs between the snapshots the store keeps for good (the migration that keeps them).
SPARSE_SPAN = 10_000


async def write_with_snapshots(
    store: EventStore, claim: Claim, events: int, batch: int, every: int
) -> list[int]:
    """Append ``events`` storage writes (to 100 keys in turn) in pipelined appends of
    ``batch``, with a snapshot on each append that crosses a multiple of ``every``, as a
    node's object takes them; return the seqs of the snapshots taken."""
    state = ObjectState()
    taken: list[int] = []
    appends = []
    seq = 0
    while seq < events:
        written = [put(f"k{n % 100}", n) for n in range(seq + 1, min(seq + batch, events) + 1)]
        for event in written:
            apply(state, event)
        first, seq = seq, seq + len(written)
        snap = None
        if seq // every > first // every:
            snap = (seq, snapshot.encode(state))
            taken.append(seq)
        appends.append(store.append(after(claim, first, written, snapshot=snap)))
    await asyncio.gather(*appends)
    return taken


async def seqs(sql: asyncpg.Connection, oid: str) -> list[int]:
    rows = await sql.fetch("SELECT seq FROM events WHERE object_id = $1 ORDER BY seq", oid)
    return [r["seq"] for r in rows]


async def last_seq(sql: asyncpg.Connection, oid: str) -> int | None:
    value = await sql.fetchval("SELECT last_seq FROM objects WHERE object_id = $1", oid)
    return None if value is None else int(value)


class Proxy:
    """A TCP proxy to the database whose open links can be frozen: bytes stop flowing but
    no side closes, like a peer that vanished without a word (asyncpg notices nothing)."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = parse_qs(parts.query)
        self._host = unquote(query.get("host", [parts.hostname or "127.0.0.1"])[0])
        self._port = int(query.get("port", [parts.port or 5432])[0])
        self._parts = parts
        self._server: asyncio.Server | None = None
        self._links: list[tuple[list[asyncio.Task[None]], list[asyncio.StreamWriter]]] = []
        #: Once the server sends bytes holding this, the link is cut right after them.
        self.cut_after: bytes | None = None
        self.cut = asyncio.Event()

    async def start(self) -> str:
        """Start listening; return the URL that reaches the database through the proxy."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        user = self._parts.username or "postgres"
        return f"postgresql://{user}@127.0.0.1:{port}{self._parts.path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._host.startswith("/"):
            path = f"{self._host}/.s.PGSQL.{self._port}"
            up_reader, up_writer = await asyncio.open_unix_connection(path)
        else:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        tasks = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(self._from_server(up_reader, writer)),
        ]
        self._links.append((tasks, [writer, up_writer]))

    async def _from_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if self.cut_after is not None and self.cut_after in data:
                    self.cut_after = None
                    self.cut.set()
                    self.sever()
                    return
        writer.close()

    def freeze(self) -> int:
        """Stop every open link from carrying bytes; return how many were frozen."""
        frozen = 0
        for tasks, _writers in self._links:
            for task in tasks:
                if not task.done():
                    task.cancel()
                    frozen += 1
        return frozen // 2

    def sever(self) -> None:
        """Close every open link on both sides, as a network failure would."""
        self.freeze()
        for _tasks, writers in self._links:
            for writer in writers:
                writer.close()
        self._links.clear()

    async def close(self) -> None:
        self.sever()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
