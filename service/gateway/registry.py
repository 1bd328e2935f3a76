"""Every socket this node holds, awake or hibernated: the runtime's SocketTransport.

An evicted object costs only its sockets' entries here. Frames released by the output gate
are written in order, by one writer task for every socket that has frames: a broadcast to
a hundred sockets is a hundred frame writes in one task, not a hundred tasks, and a text
sent to many sockets is encoded once. A socket whose peer reads slowly (its transport's
buffer is full), or that is being closed, gets a task of its own, so it holds up no other.
Auto-responses are answered from here without waking the object.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import UTC, datetime
from typing import cast

from aiohttp import web

from service.gateway import frames

log = logging.getLogger(__name__)

#: ("send", data) or ("close", (code, reason)).
Command = tuple[str, object]


class SocketEntry:
    """One connection, by socket id."""

    __slots__ = (
        "auto_response_at",
        "binding",
        "close_sent",
        "close_sent_with",
        "ended",
        "hibernatable",
        "object_id",
        "queue",
        "socket_id",
        "transport",
        "writing",
        "ws",
    )

    def __init__(self, socket_id: str, object_id: str, binding: str, hibernatable: bool) -> None:
        self.socket_id = socket_id
        self.object_id = object_id
        self.binding = binding
        self.hibernatable = hibernatable
        self.ws: web.WebSocketResponse | None = None
        self.transport: asyncio.Transport | None = None
        #: Commands not written yet; None while there are none (most sockets, most of the
        #: time: an empty deque costs 600 bytes, and a node holds many idle sockets).
        self.queue: collections.deque[Command] | None = None
        self.writing = False
        #: The object called close(): no more auto-responses.
        self.close_sent = False
        #: (code, reason) of the object's close, once its Close frame is written.
        self.close_sent_with: tuple[int, str] | None = None
        #: The connection's end has been reported to the object.
        self.ended = False
        self.auto_response_at: datetime | None = None

    def push(self, command: Command) -> None:
        if self.queue is None:
            self.queue = collections.deque()
        self.queue.append(command)


class SocketRegistry:
    """Socket entries by id, and each object's auto-response pair."""

    def __init__(self) -> None:
        self.entries: dict[str, SocketEntry] = {}
        self._auto_responses: dict[str, tuple[str, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Sockets with frames to write and no task writing them yet.
        self._ready: list[SocketEntry] = []
        self._writer: asyncio.Task[None] | None = None

    # -- SocketTransport (called by the runtime) ----------------------------------------

    def expect(self, socket_id: str, object_id: str, binding: str, hibernatable: bool) -> None:
        if socket_id not in self.entries:
            self.entries[socket_id] = SocketEntry(socket_id, object_id, binding, hibernatable)

    def send(self, socket_id: str, data: str | bytes) -> None:
        entry = self.entries.get(socket_id)
        if entry is None or entry.ended:
            return
        entry.push(("send", data))
        self._kick(entry)

    def close(self, socket_id: str, code: int | None, reason: str) -> None:
        entry = self.entries.get(socket_id)
        if entry is None or entry.ended:
            return
        entry.close_sent = True
        entry.push(("close", (code, reason)))
        self._kick(entry)

    def set_auto_response(self, object_id: str, pair: tuple[str, str] | None) -> None:
        if pair is None:
            self._auto_responses.pop(object_id, None)
        else:
            self._auto_responses[object_id] = pair

    def auto_response_timestamp(self, socket_id: str) -> datetime | None:
        entry = self.entries.get(socket_id)
        return entry.auto_response_at if entry else None

    # -- the gateway side ---------------------------------------------------------------

    def attach(
        self, socket_id: str, ws: web.WebSocketResponse, transport: asyncio.Transport | None
    ) -> SocketEntry:
        entry = self.entries[socket_id]
        entry.ws = ws
        entry.transport = transport
        self._kick(entry)
        return entry

    def remove(self, socket_id: str) -> None:
        self.entries.pop(socket_id, None)

    def auto_response(self, entry: SocketEntry, text: str) -> bool:
        """Answer ``text`` if it is the object's auto-response request; True if answered."""
        pair = self._auto_responses.get(entry.object_id)
        if pair is None or text != pair[0] or entry.close_sent:
            return False
        entry.auto_response_at = datetime.now(UTC)
        # Skips the output gate, but queues behind frames already released to this socket.
        entry.push(("send", pair[1]))
        self._kick(entry)
        return True

    def _kick(self, entry: SocketEntry) -> None:
        if entry.ws is None or entry.writing or not entry.queue:
            return
        entry.writing = True
        self._ready.append(entry)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_ready())

    async def _write_ready(self) -> None:
        """Write the queued frames of every ready socket; runs until none is left.

        Frames to an uncompressed socket whose buffer has room are built once per payload
        and written together, one transport write per socket; this goes through every
        ready socket in one loop iteration. A socket that negotiated compression is left to
        its own task, which sends through aiohttp's writer.
        """
        try:
            while self._ready:
                ready, self._ready = self._ready, []
                cache = frames.FrameCache()
                for entry in ready:
                    try:
                        if entry.ws is None or not entry.ws.compress:
                            _write_frames(entry, cache)
                    except (ConnectionError, RuntimeError) as error:
                        log.debug("send failed: %s", error, extra={"object_id": entry.object_id})
                        entry.queue = None
                    if entry.queue:
                        self._spawn(entry)
                    else:
                        entry.queue = None
                        entry.writing = False
        finally:
            self._writer = None

    def _spawn(self, entry: SocketEntry) -> None:
        """Give ``entry`` a writer task of its own (``entry.writing`` stays set)."""
        task = asyncio.create_task(self._drain(entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, entry: SocketEntry) -> None:
        ws = entry.ws
        assert ws is not None
        try:
            while entry.queue:
                kind, payload = entry.queue.popleft()
                if ws.closed:
                    entry.queue = None
                    break
                if kind == "send":
                    if isinstance(payload, str):
                        await ws.send_str(payload)
                    else:
                        assert isinstance(payload, bytes)
                        await ws.send_bytes(payload)
                else:
                    code, reason = cast(tuple[int | None, str], payload)
                    entry.queue = None
                    entry.close_sent_with = (code or 1000, reason)
                    await ws.close(code=code or 1000, message=reason.encode("utf-8"))
        except (ConnectionError, RuntimeError) as error:
            log.debug("send failed: %s", error, extra={"object_id": entry.object_id})
            entry.queue = None
        finally:
            entry.writing = False

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until every released frame has been written."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline and any(
            entry.writing or (entry.queue and entry.ws is not None)
            for entry in self.entries.values()
        ):
            await asyncio.sleep(0.01)

    # -- figures ------------------------------------------------------------------------

    def socket_count(self) -> int:
        return sum(1 for e in self.entries.values() if e.ws is not None)

    def object_ids(self) -> set[str]:
        return {e.object_id for e in self.entries.values()}


def _writable(transport: asyncio.Transport | None) -> bool:
    """Whether a frame can be written now without waiting for the peer to read."""
    # uvloop's transports have these methods without subclassing asyncio.WriteTransport.
    if transport is None or transport.is_closing():
        return False
    return transport.get_write_buffer_size() < transport.get_write_buffer_limits()[1]


#: Bytes joined into one transport write at most (beyond one frame), so that a socket
#: whose peer reads slowly gets at most this much past its buffer's high-water mark.
_WRITE_CHUNK = 1 << 16


def _write_frames(entry: SocketEntry, cache: frames.FrameCache) -> None:
    """Write the socket's leading sends as raw frames while its buffer has room."""
    ws, transport = entry.ws, entry.transport
    queue = entry.queue
    while queue and queue[0][0] == "send" and ws is not None and not ws.closed:
        if transport is None or not _writable(transport):
            return
        chunk: list[bytes] = []
        size = 0
        while queue and queue[0][0] == "send" and size < _WRITE_CHUNK:
            frame = cache.frame(cast(str | bytes, queue.popleft()[1]))
            chunk.append(frame)
            size += len(frame)
        transport.write(chunk[0] if len(chunk) == 1 else b"".join(chunk))
