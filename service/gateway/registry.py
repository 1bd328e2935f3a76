"""Every socket this node holds, awake or hibernated: the runtime's socket output and
auto-responses (``ports.socket_output``, ``ports.auto_responses``).

An evicted object costs only its sockets' entries here. Frames released by the output gate
are written in order, by one writer task for every socket that has frames: a broadcast to
a hundred sockets is a hundred frame writes in one task, not a hundred tasks, and a text
sent to many sockets is encoded once. A socket whose peer reads slowly (its transport's
buffer is full), or that is being closed, gets a task of its own, so it holds up no other.
Auto-responses are answered from here without waking the object, and protocol pings go out
from here to clients that have been silent (the heartbeat).

What a socket has pending (its queue and its transport's buffer) is bounded: a client that
stops reading would otherwise keep every frame sent to it in memory, for as long as it stays
connected. Past the bound the socket is closed with 1008, what was queued for it is dropped,
and its connection is aborted shortly after, since a peer that does not read will not read
the Close frame either.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import UTC, datetime
from typing import cast

from service.gateway import frames
from service.gateway.frame_guard import GuardedWebSocketResponse
from service.metrics import Metrics
from service.tasks import BackgroundTasks

log = logging.getLogger(__name__)

#: Close code and reason for a socket whose client does not read what is sent to it.
OVERFLOW_CODE = 1008
OVERFLOW_REASON = "Client is not reading: more than {limit} bytes of output are waiting for it."

#: Seconds a connection that has ended may still flush what it has written before it is
#: aborted: enough for a client that reads to take the Close frame, and a bound on the
#: memory of one that does not (its transport would otherwise keep its buffer forever).
LINGER_SECONDS = 2.0

#: A Ping frame with no payload (RFC 6455, section 5.5.2): control frames are never
#: compressed, so it can be written to any socket.
PING_FRAME = b"\x89\x00"

#: ("send", data) or ("close", (code, reason)).
Command = tuple[str, object]


class SocketEntry:
    """One connection, by socket id."""

    __slots__ = (
        "auto_response_at",
        "binding",
        "buffered_bytes",
        "close_received",
        "close_sent",
        "close_sent_with",
        "ended",
        "hibernatable",
        "object_id",
        "queue",
        "queued_bytes",
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
        self.ws: GuardedWebSocketResponse | None = None
        self.transport: asyncio.Transport | None = None
        #: Commands not written yet; None while there are none (most sockets, most of the
        #: time: an empty deque costs 600 bytes, and a node holds many idle sockets).
        self.queue: collections.deque[Command] | None = None
        #: While the socket is behind (its frames wait for a writer task of its own): the
        #: payload sizes in ``queue`` added up, a text counting its characters. -1 while it
        #: is not, so that a send to a socket that keeps up costs one comparison more.
        self.queued_bytes = -1
        #: While behind, at least what the transport's buffer holds: set when frames are
        #: written to it, read again only when the sum with ``queued_bytes`` seems over.
        self.buffered_bytes = 0
        self.writing = False
        #: The object called close() (or the gateway gave up on the client): no more
        #: auto-responses.
        self.close_sent = False
        #: (code, reason, was_clean) of the close the gateway sent first: the object's
        #: once its Close frame is written, or the gateway's own. The object hears of it.
        self.close_sent_with: tuple[int, str, bool] | None = None
        #: (code, reason) of the client's Close frame, when the client closed first.
        self.close_received: tuple[int, str] | None = None
        #: The connection's end has been reported to the object.
        self.ended = False
        self.auto_response_at: datetime | None = None

    def push(self, command: Command) -> None:
        if self.queue is None:
            self.queue = collections.deque()
        self.queue.append(command)

    def drop_queue(self) -> None:
        self.queue = None
        self.queued_bytes = -1

    def fall_behind(self, transport: asyncio.Transport | None) -> None:
        """Start counting what waits for this socket (its frames were not all written)."""
        sends = [cast(str | bytes, p) for kind, p in self.queue or () if kind == "send"]
        self.queued_bytes = sum(map(len, sends))
        if transport is None or transport.is_closing():
            self.buffered_bytes = 0
        else:
            self.buffered_bytes = transport.get_write_buffer_size()


class SocketRegistry:
    """Socket entries by id, and each object's auto-response pair."""

    def __init__(self, *, max_buffered_bytes: int, metrics: Metrics) -> None:
        self.max_buffered_bytes = max_buffered_bytes
        self._metrics = metrics
        self.entries: dict[str, SocketEntry] = {}
        self._auto_responses: dict[str, tuple[str, str]] = {}
        #: Writers of sockets that are behind, and closes of those that gave up on reading.
        self._tasks = BackgroundTasks(log)
        #: Sockets with frames to write and no task writing them yet.
        self._ready: list[SocketEntry] = []
        self._writer: asyncio.Task[None] | None = None

    # -- SocketOutput (called by the runtime's output gate) -----------------------------

    def expect(self, socket_id: str, object_id: str, binding: str, hibernatable: bool) -> None:
        if socket_id not in self.entries:
            self.entries[socket_id] = SocketEntry(socket_id, object_id, binding, hibernatable)

    def send(self, socket_id: str, data: str | bytes) -> None:
        entry = self.entries.get(socket_id)
        if entry is None or entry.ended or entry.close_sent_with is not None:
            return
        entry.push(("send", data))
        if entry.queued_bytes >= 0:  # behind: what waits for it is bounded
            entry.queued_bytes += len(data)
            # The sum is cheap and at least what waits; the transport is asked only past it.
            over = entry.queued_bytes + entry.buffered_bytes > self.max_buffered_bytes
            if over and self._overflowing(entry):
                return
        self._kick(entry)

    def close(self, socket_id: str, code: int | None, reason: str) -> None:
        entry = self.entries.get(socket_id)
        if entry is None or entry.ended or entry.close_sent_with is not None:
            return
        entry.close_sent = True
        entry.push(("close", (code, reason)))
        self._kick(entry)

    def holds(self, socket_id: str) -> bool:
        return socket_id in self.entries

    # -- AutoResponses (called by the runtime) ------------------------------------------

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
        self, socket_id: str, ws: GuardedWebSocketResponse, transport: asyncio.Transport | None
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
        if entry.queued_bytes >= 0:
            entry.queued_bytes += len(pair[1])
            over = entry.queued_bytes + entry.buffered_bytes > self.max_buffered_bytes
            if over and self._overflowing(entry):
                return True
        self._kick(entry)
        return True

    def _overflowing(self, entry: SocketEntry) -> bool:
        """Whether more than the bound waits for a client that is not keeping up (its
        connection's buffer is full); if so, the gateway gives up on that client.

        A burst released at once (one turn's frames) may exceed the bound for a moment
        while the client reads it: that output was held in memory by the output gate
        anyway, and any send while the client is still behind closes it.
        """
        transport = entry.transport
        if transport is None or transport.is_closing() or entry.ws is None:
            return False
        buffered = entry.buffered_bytes = transport.get_write_buffer_size()
        if entry.queued_bytes + buffered <= self.max_buffered_bytes:
            return False
        if buffered < transport.get_write_buffer_limits()[1]:
            return False
        log.warning(
            "closing a socket whose client is not reading: %d bytes queued, %d in its buffer",
            entry.queued_bytes,
            buffered,
            extra={"object_id": entry.object_id, "action": "overflow"},
        )
        self._metrics.socket_overflows.inc()
        reason = OVERFLOW_REASON.format(limit=self.max_buffered_bytes)
        entry.drop_queue()
        entry.close_sent = True
        entry.close_sent_with = (OVERFLOW_CODE, reason, False)
        self._tasks.spawn(self._abandon(entry.ws, transport, reason))
        return True

    async def _abandon(
        self, ws: GuardedWebSocketResponse, transport: asyncio.Transport, reason: str
    ) -> None:
        """Close a socket without waiting for its client, then abort its connection."""
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.abort)
        try:
            await ws.close(code=OVERFLOW_CODE, message=reason.encode("utf-8"), drain=False)
        except Exception as error:  # the connection is going anyway
            log.debug("close of an overflowing socket failed: %r", error)

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
                        entry.drop_queue()
                    if entry.queue:
                        self._spawn(entry)
                    else:
                        entry.drop_queue()
                        entry.writing = False
        finally:
            self._writer = None

    def _spawn(self, entry: SocketEntry) -> None:
        """Give ``entry`` a writer task of its own (``entry.writing`` stays set)."""
        entry.fall_behind(entry.transport)
        self._tasks.spawn(self._drain(entry))

    async def _drain(self, entry: SocketEntry) -> None:
        ws = entry.ws
        assert ws is not None
        try:
            while entry.queue:
                kind, payload = entry.queue.popleft()
                if ws.closed:
                    entry.drop_queue()
                    break
                if kind == "send":
                    data = cast(str | bytes, payload)
                    entry.queued_bytes -= len(data)
                    if isinstance(data, str):
                        await ws.send_str(data)
                    else:
                        await ws.send_bytes(data)
                    transport = entry.transport
                    if transport is not None and not transport.is_closing():
                        entry.buffered_bytes = transport.get_write_buffer_size()
                else:
                    code, reason = cast(tuple[int | None, str], payload)
                    entry.drop_queue()
                    if entry.close_sent_with is None:
                        entry.close_sent_with = (code or 1000, reason, True)
                    code, reason = entry.close_sent_with[:2]
                    await ws.close(code=code, message=reason.encode("utf-8"))
        except (ConnectionError, RuntimeError) as error:
            log.debug("send failed: %s", error, extra={"object_id": entry.object_id})
            entry.drop_queue()
        finally:
            entry.writing = False
            entry.queued_bytes = -1  # caught up (or gone): the write pass takes it again

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until every released frame has been written."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline and any(
            entry.writing or (entry.queue and entry.ws is not None)
            for entry in self.entries.values()
        ):
            await asyncio.sleep(0.01)

    # -- heartbeat ----------------------------------------------------------------------

    async def heartbeats(self, interval: float) -> None:
        """Ping every client that has been silent for ``interval`` seconds, and drop one that
        is still silent half of ``interval`` after its ping (it would stay in presence, and
        its connection in memory, forever).

        One loop for every socket, where aiohttp's own heartbeat keeps a timer per socket
        (about 0.7 KiB each, measured, on a node that holds mostly idle sockets): a round
        every half interval looks at what each socket's frame guard heard since the last.
        """
        while True:
            await asyncio.sleep(interval / 2)
            for entry in list(self.entries.values()):
                _beat(entry)

    # -- figures ------------------------------------------------------------------------

    def socket_count(self) -> int:
        return sum(1 for e in self.entries.values() if e.ws is not None)

    def object_ids(self) -> set[str]:
        return {e.object_id for e in self.entries.values()}


def _beat(entry: SocketEntry) -> None:
    """One heartbeat round for one socket: silent for two rounds, it is pinged; for a third,
    its connection is dropped (the receive loop then reports 1006 to the object)."""
    ws, transport = entry.ws, entry.transport
    guard = ws.guard if ws is not None else None
    if guard is None or transport is None or transport.is_closing():
        return
    if guard.heard:
        guard.heard = False
        guard.silent_rounds = 0
        return
    guard.silent_rounds += 1
    if guard.silent_rounds == 2:
        transport.write(PING_FRAME)
    elif guard.silent_rounds > 2:
        log.info(
            "dropping a connection whose client did not answer a ping",
            extra={"object_id": entry.object_id, "action": "heartbeat"},
        )
        transport.abort()


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
