"""Load generator of ``bench.wake``: wakes hibernated rooms one at a time and times each wake.

Run by ``bench.wake`` as a process of its own; it talks JSON lines on stdin and stdout:

1. It connects one WebSocket per room (``/room/<name>``), waits until every room has
   hibernated, and prints ``{"event": "connected", "objects": {name: object_id}}``.
2. It waits for ``{"go": true, "messages": {name: count}}`` on stdin (the parent has written
   the rooms' histories meanwhile; ``count`` is how many messages each history holds).
3. It wakes each room once (the *first* wake, which replays the whole history), then
   ``--warmup`` times per room untimed (each connection of the node's pool prepares its
   statements once), then ``--wakes`` times per room, round-robin, and prints
   ``{"event": "done", ...}``.

Before every send it waits until *every* room is hibernated (released in ``objects``, its
snapshot written), so that exactly one wake runs on the node at a time and nothing else
does. The wake time is the handler's ``time.monotonic()`` minus this process's
``time.monotonic()`` right before the send (CLOCK_MONOTONIC is system-wide on Linux). A
sample counts only if the reply shows a fresh instance (constructed after the send, no turn
before this one) and the node's wake histogram counted exactly one load meanwhile; the
others are discarded and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from service.store import database_url

#: The node metrics each sample is checked against.
_METRIC = re.compile(
    r"^(durable_wake_seconds_sum|durable_wake_seconds_count|durable_hibernations_total)"
    r"\s+([0-9.eE+-]+)$",
    re.MULTILINE,
)

#: Per room: released by its node (hibernated) and how many events follow its newest snapshot.
_ROOMS = """
SELECT o.object_id, o.owner_node IS NULL AS released,
       o.last_seq - coalesce((SELECT max(s.seq) FROM snapshots AS s
                               WHERE s.object_id = o.object_id), 0) AS after_snapshot
  FROM objects AS o
 WHERE o.object_id = ANY($1::text[])
"""

_OBJECT_IDS = "SELECT name, object_id FROM objects WHERE binding = 'ROOM' AND name = ANY($1)"

_FILLER = " the quick brown fox jumps over the lazy dog" * 2


class ClientError(Exception):
    """Something the benchmark cannot measure through (a timeout, a wrong reply)."""


@dataclass
class Room:
    """One room, its history length and the socket this process holds open to it."""

    name: str
    history: int
    ws: aiohttp.ClientWebSocketResponse
    object_id: str = ""
    #: The ``count`` the next reply must carry (messages stored so far).
    expected_count: int = 0


@dataclass
class Node:
    """Cumulative wake and hibernation counters of the node."""

    wake_sum: float = 0.0
    wake_count: float = 0.0
    hibernations: float = 0.0


class Waker:
    """Sends one message at a time to hibernated rooms and records what each wake took."""

    def __init__(
        self,
        args: argparse.Namespace,
        session: aiohttp.ClientSession,
        db: asyncpg.Connection,
        rooms: list[Room],
    ) -> None:
        self.args = args
        self.session = session
        self.db = db
        self.rooms = rooms
        self.node = Node()
        self.sent = 0

    async def scrape(self) -> Node:
        """The node's wake histogram sum/count and hibernation counter."""
        async with self.session.get(self.args.http_base + "/metrics") as response:
            text = await response.text()
        found = {name: float(value) for name, value in _METRIC.findall(text)}
        return Node(
            found.get("durable_wake_seconds_sum", 0.0),
            found.get("durable_wake_seconds_count", 0.0),
            found.get("durable_hibernations_total", 0.0),
        )

    async def all_hibernated(self, target: Room | None = None) -> int:
        """Wait until no room is live; return how many events ``target`` will replay."""
        ids = [room.object_id for room in self.rooms]
        deadline = time.monotonic() + self.args.hibernate_timeout
        while True:
            rows = await self.db.fetch(_ROOMS, ids)
            if len(rows) == len(ids) and all(row["released"] for row in rows):
                if target is None:
                    return 0
                return int(next(r["after_snapshot"] for r in rows if r[0] == target.object_id))
            if time.monotonic() > deadline:
                live = [row[0][:12] for row in rows if not row["released"]]
                raise ClientError(
                    f"rooms still live after {self.args.hibernate_timeout:.0f} s: {live}"
                )
            await asyncio.sleep(self.args.poll)

    async def wake(self, room: Room, timeout: float) -> dict[str, Any]:
        """Wait for every room to hibernate, then send ``room`` one message and time it."""
        replay = await self.all_hibernated(room)
        if self.args.settle:
            await asyncio.sleep(self.args.settle)
        before = self.node
        text = (f"wake {self.sent:06d} of {room.name}" + _FILLER)[:80]
        self.sent += 1
        sent_at = time.monotonic()
        await room.ws.send_str(text)
        try:
            message = await room.ws.receive(timeout)
        except TimeoutError:
            raise ClientError(f"{room.name}: no reply within {timeout:.0f} s") from None
        received_at = time.monotonic()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ClientError(f"{room.name}: the socket ended ({message.type.name})")
        reply = json.loads(message.data)
        self.node = await self.scrape()
        if reply["count"] != room.expected_count:
            raise ClientError(
                f"{room.name}: the room has stored {reply['count']} messages, expected "
                f"{room.expected_count}: its history was not replayed faithfully"
            )
        room.expected_count += 1
        loads = self.node.wake_count - before.wake_count
        reasons = []
        if reply["turns_before"] != 0:
            reasons.append("instance was live")
        if reply["constructed_at"] <= sent_at:
            reasons.append("instance constructed before the send")
        if loads != 1:
            reasons.append(f"{loads:.0f} loads")
        load_ms = (self.node.wake_sum - before.wake_sum) * 1000
        return {
            "room": room.name,
            "history": room.history,
            "valid": not reasons,
            "reasons": reasons,
            "replayed_events": replay,
            "wake_ms": (reply["handler_at"] - sent_at) * 1000,
            "roundtrip_ms": (received_at - sent_at) * 1000,
            "send_to_constructor_ms": (reply["constructed_at"] - sent_at) * 1000,
            "constructor_to_handler_ms": (reply["handler_at"] - reply["constructed_at"]) * 1000,
            "load_ms": load_ms if loads == 1 else None,
            "hibernations": self.node.hibernations - before.hibernations,
        }


async def connect(args: argparse.Namespace, session: aiohttp.ClientSession) -> list[Room]:
    """One socket per room named in ``--rooms`` (a JSON list of [name, history])."""
    rooms = []
    for name, history in json.loads(args.rooms):
        ws = await session.ws_connect(f"{args.ws_base}/room/{name}", autoping=True)
        rooms.append(Room(name, int(history), ws))
    return rooms


async def read_go() -> dict[str, Any]:
    """The parent's go-ahead (one JSON line on stdin); EOF means it gave up."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    line = await reader.readline()
    if not line:
        raise ClientError("stdin closed before the go-ahead")
    go: dict[str, Any] = json.loads(line)
    return go


def emit(payload: dict[str, Any]) -> None:
    """One JSON line to the parent."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> None:
    """Connect, report, wait for the histories, then wake the rooms."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    db = await asyncpg.connect(database_url.for_asyncpg(args.database_url), timeout=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            rooms = await connect(args, session)
            ids = {
                r["name"]: r["object_id"]
                for r in await db.fetch(_OBJECT_IDS, [r.name for r in rooms])
            }
            for room in rooms:
                room.object_id = ids[room.name]
            waker = Waker(args, session, db, rooms)
            await waker.all_hibernated()
            emit({"event": "connected", "objects": ids})
            go = await read_go()
            for room in rooms:
                room.expected_count = int(go["messages"][room.name])
            waker.node = await waker.scrape()
            first = [await waker.wake(room, args.first_timeout) for room in rooms]
            for _ in range(args.warmup):
                for room in rooms:
                    await waker.wake(room, args.reply_timeout)
            samples: list[dict[str, Any]] = []
            started = time.monotonic()
            truncated = False
            for _ in range(args.wakes):
                if time.monotonic() - started > args.max_seconds:
                    truncated = True
                    break
                for room in rooms:
                    samples.append(await waker.wake(room, args.reply_timeout))
            elapsed = time.monotonic() - started
            for room in rooms:
                await room.ws.close()
    finally:
        await db.close()
    emit(
        {
            "event": "done",
            "first": first,
            "samples": samples,
            "seconds": elapsed,
            "truncated": truncated,
        }
    )


def parser() -> argparse.ArgumentParser:
    """Command-line options (set by bench.wake)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.wake_client", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--ws-base", required=True, help="ws://host:port of the node")
    parser.add_argument("--http-base", required=True, help="http://host:port of the node")
    parser.add_argument("--database-url", required=True, help="the node's database")
    parser.add_argument("--rooms", required=True, help="JSON list of [name, history events]")
    parser.add_argument("--wakes", type=int, default=200, help="timed wakes per room")
    parser.add_argument("--warmup", type=int, default=5, help="untimed wakes per room first")
    parser.add_argument("--reply-timeout", type=float, default=10.0, help="seconds per reply")
    parser.add_argument("--first-timeout", type=float, default=300.0, help="first wake timeout")
    parser.add_argument("--hibernate-timeout", type=float, default=30.0, help="seconds to wait")
    parser.add_argument("--poll", type=float, default=0.005, help="seconds between checks")
    parser.add_argument("--settle", type=float, default=0.005, help="pause after hibernation")
    parser.add_argument("--max-seconds", type=float, default=150.0, help="timed phase bound")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run; errors go to stderr with exit code 1."""
    args = parser().parse_args(argv)
    try:
        asyncio.run(run(args))
    except (ClientError, OSError, aiohttp.ClientError, asyncpg.PostgresError) as error:
        print(f"wake client: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
