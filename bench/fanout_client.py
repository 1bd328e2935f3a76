"""The load generator of ``bench.fanout``: WebSocket chat clients in a process of their own.

``python -m bench.fanout_client`` reads one JSON command per line on stdin and answers each
with one JSON line on stdout (it stops at ``quit`` or at the end of stdin, so it never
outlives the benchmark):

- ``connect``: open the given clients (each in a room, some of them senders) to ``url``;
- ``phase``: from the common start time ``start`` (``time.monotonic()``, which is
  system-wide on Linux), the senders send, either keeping up to ``window`` messages
  outstanding (a message is outstanding until its sender receives its own copy back) or
  open-loop at ``rate`` messages per second each; they stop at the end of the measured
  window and wait for their own copies; the answer is how many each sent;
- ``expect``: given every sender's count (from all processes), wait until each client has
  a copy of every message of its room, then answer with the phase's figures.

Every message reads ``<phase>:<sender>:<seq>:<monotonic send time>:<padding>``. Each
receiver records ``now - send time`` of every copy of a message sent within the measured
window in a log-scale histogram (1% wide buckets: percentiles stay within 0.5%), counts the
copies it received within the window, and checks each sender's sequence for repeats.

The clients speak RFC 6455 themselves on asyncio transports rather than through aiohttp's
client: the generator shares two cores with the servers, and parsing every frame of a
``data_received`` chunk in one loop costs a fraction of a message future per frame. They
offer no compression (as aiohttp's client and browsers would), so the servers write plain
frames; the masking key is zero, which servers accept (it only guards proxies, and there
are none on 127.0.0.1) and which spares XOR-ing every payload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

#: Buckets per e-fold of the latency histogram: consecutive bounds differ by 1%.
_PER_E = 1.0 / math.log(1.01)

#: Seconds a process lives at most, whatever its parent does.
LIFETIME = 3600.0

#: Open loop: a send due sooner than this is made at once rather than slept for.
_SPIN = 0.0005

_ZERO_MASK = b"\x00\x00\x00\x00"


def bucket(seconds: float) -> int:
    """The histogram bucket of a latency (1 us and less share bucket 0)."""
    micros = seconds * 1e6
    return int(math.log(micros) * _PER_E) if micros > 1.0 else 0


def bucket_seconds(index: int) -> float:
    """The geometric middle of a bucket, in seconds."""
    return math.exp((index + 0.5) / _PER_E) / 1e6 if index > 0 else 1e-6


def histogram_percentile(histogram: dict[int, int], fraction: float) -> float:
    """The nearest-rank percentile (seconds) of a bucket histogram; nan when empty."""
    total = sum(histogram.values())
    if not total:
        return math.nan
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bucket_seconds(index)
    return bucket_seconds(max(histogram))


def text_frame(payload: bytes) -> bytes:
    """A final, masked (zero key) text frame."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 65536:
        head = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + _ZERO_MASK + payload


class Phase:
    """What one process measures during one phase."""

    def __init__(self, command: dict[str, Any]) -> None:
        self.id: int = command["id"]
        self.mode: str = command["mode"]
        self.window: int = command.get("window", 1)
        self.rate: float = command.get("rate", 0.0)
        self.cap: int = command.get("max_outstanding", 1000)
        self.start: float = command["start"]
        self.measure_from: float = self.start + command["warmup"]
        self.measure_to: float = self.measure_from + command["duration"]
        self.drain: float = command["drain"]
        self.prefix = f"{self.id}:".encode()
        self.stopped = False
        self.received = 0
        self.received_window = 0
        self.sent_window = 0
        self.skipped = 0
        self.reordered = 0
        self.latency: dict[int, int] = {}
        self.lag: dict[int, int] = {}


class Client:
    """One WebSocket client: its room, and what it received from each sender."""

    __slots__ = ("connection", "counts", "id", "next_seq", "outstanding", "room", "sender", "sent")

    def __init__(self, client_id: int, room: str, sender: bool) -> None:
        self.id = client_id
        self.room = room
        self.sender = sender
        self.connection: Connection | None = None
        self.outstanding = 0
        self.sent = 0
        #: Sender id -> copies received from it in this phase.
        self.counts: dict[int, int] = {}
        #: Sender id -> the sequence number expected next from it.
        self.next_seq: dict[int, int] = {}


class Connection(asyncio.Protocol):
    """One client's WebSocket connection: the handshake, then frames in both directions."""

    def __init__(self, client: Client, generator: LoadGenerator) -> None:
        loop = asyncio.get_running_loop()
        self.client = client
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = loop.create_future()
        self.lost = loop.create_future()
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.closing:
            self.generator.error(f"client {self.client.id}: connection lost ({exc!r})")

    def handshake(self, host: str, path: str) -> None:
        """Send the upgrade request."""
        assert self.transport is not None
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if status.split(b" ", 2)[1:2] != [b"101"]:
                self.upgraded.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                return
            self.upgraded.set_result(None)
        self.frames(time.monotonic())

    def frames(self, now: float) -> None:
        """Handle every complete frame in the buffer (the server sends them unfragmented)."""
        buffer = self.buffer
        size = len(buffer)
        pos = 0
        receive = self.generator.receive
        while size - pos >= 2:
            first = buffer[pos]
            length = buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            payload = bytes(buffer[pos + head : end])
            pos = end
            opcode = first & 0x0F
            if opcode == 1 and first & 0x80:
                receive(self.client, payload, now)
            elif opcode == 9:
                self.control(0x8A, payload)  # ping: pong
            elif opcode == 8:
                if not self.closing:
                    self.generator.error(f"client {self.client.id}: closed by the server")
                    self.closing = True
                    self.control(0x88, payload[:2])
            else:
                self.generator.error(f"client {self.client.id}: unexpected frame {first:#x}")
        del buffer[:pos]

    def control(self, first: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((first, 0x80 | len(payload))) + _ZERO_MASK + payload)

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(text_frame(payload))

    async def close(self) -> None:
        """Close 1000, wait briefly for the server's answer, then drop the connection."""
        if self.transport is None:
            return
        if not self.closing:
            self.closing = True
            self.control(0x88, (1000).to_bytes(2, "big"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), 2)
        self.transport.close()


class LoadGenerator:
    """The clients of this process and the phase they are in."""

    def __init__(self) -> None:
        self.clients: list[Client] = []
        self.senders: list[Client] = []
        #: Room -> ids of the senders in it (all processes).
        self.room_senders: dict[str, list[int]] = {}
        self.phase: Phase | None = None
        self.stray = 0
        self.errors: list[str] = []
        self.pad = b""
        self.sending: asyncio.Task[None] | None = None

    def error(self, text: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(text)

    # -- connect ------------------------------------------------------------------------

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        """Open every client's socket, a bounded number of handshakes at a time."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        self.pad = b"x" * command["padding"]
        self.room_senders = command["room_senders"]
        self.clients = [Client(i, room, bool(s)) for i, room, s in command["clients"]]
        self.senders = [c for c in self.clients if c.sender]
        url = urlsplit(command["url"])
        host, port = url.hostname or "127.0.0.1", url.port or 80
        gate = asyncio.Semaphore(command.get("concurrency", 32))

        async def open_one(client: Client) -> None:
            async with gate:
                _, connection = await loop.create_connection(
                    lambda: Connection(client, self), host, port
                )
                connection.handshake(f"{host}:{port}", f"{url.path}/{client.room}")
                await asyncio.wait_for(connection.upgraded, 60)
                client.connection = connection

        await asyncio.gather(*(open_one(c) for c in self.clients))
        return {
            "op": "connected",
            "clients": len(self.clients),
            "seconds": time.monotonic() - started,
        }

    # -- receiving ----------------------------------------------------------------------

    def receive(self, client: Client, payload: bytes, now: float) -> None:
        """One copy: latency, window count, sequence check; a window sender sends again."""
        phase = self.phase
        if phase is None or not payload.startswith(phase.prefix):
            self.stray += 1
            return
        _, sender_text, seq_text, sent_text, _ = payload.split(b":", 4)
        sender = int(sender_text)
        seq = int(seq_text)
        sent = float(sent_text)
        phase.received += 1
        if phase.measure_from <= now < phase.measure_to:
            phase.received_window += 1
        if phase.measure_from <= sent < phase.measure_to:
            index = bucket(now - sent)
            phase.latency[index] = phase.latency.get(index, 0) + 1
        if seq >= client.next_seq.get(sender, 0):
            client.next_seq[sender] = seq + 1
        else:
            phase.reordered += 1
        client.counts[sender] = client.counts.get(sender, 0) + 1
        if sender == client.id:
            client.outstanding -= 1
            if phase.mode == "window" and not phase.stopped and now < phase.measure_to:
                self.send(client, phase, time.monotonic())

    # -- sending ------------------------------------------------------------------------

    def send(self, client: Client, phase: Phase, now: float) -> None:
        assert client.connection is not None
        client.outstanding += 1
        client.sent += 1
        message = b"%s%d:%d:%r:%s" % (phase.prefix, client.id, client.sent - 1, now, self.pad)
        client.connection.send(message)
        if now >= phase.measure_from:
            phase.sent_window += 1

    async def run_phase(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send from the common start until the window ends; wait for our own copies."""
        phase = self.phase = Phase(command)
        self.stray = 0
        for client in self.clients:
            client.counts = {}
            client.next_seq = {}
            client.outstanding = 0
            client.sent = 0
        send = self.send_window if phase.mode == "window" else self.send_rate
        self.sending = asyncio.create_task(send(phase))
        await asyncio.sleep(max(0.0, phase.measure_to - time.monotonic()))
        phase.stopped = True
        try:
            await asyncio.wait_for(self.sending, phase.drain)
        except Exception as error:
            self.error(f"sending failed: {error!r}")
        deadline = time.monotonic() + phase.drain
        while any(c.outstanding > 0 for c in self.senders) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return {
            "op": "sent",
            "id": phase.id,
            "sent": {str(c.id): c.sent for c in self.senders},
            "unreturned": sum(max(0, c.outstanding) for c in self.senders),
        }

    async def send_window(self, phase: Phase) -> None:
        """Closed loop: fill every sender's window; each own copy back sends the next."""
        await asyncio.sleep(max(0.0, phase.start - time.monotonic()))
        for _ in range(phase.window):
            for client in self.senders:
                self.send(client, phase, time.monotonic())

    async def send_rate(self, phase: Phase) -> None:
        """Open loop: each sender sends every 1/rate seconds from a random offset of its
        own, whatever comes back; a send is skipped (and counted) while ``phase.cap``
        messages of that sender are outstanding. One task sends for every sender, in the
        order of their offsets."""
        interval = 1.0 / phase.rate
        order = sorted((random.random() * interval, c) for c in self.senders)
        base = phase.start
        while order and not phase.stopped:
            for offset, client in order:
                due = base + offset
                if due >= phase.measure_to:
                    return
                delay = due - time.monotonic()
                if delay > _SPIN:
                    await asyncio.sleep(delay)
                if client.outstanding >= phase.cap:
                    phase.skipped += 1
                    continue
                now = time.monotonic()
                self.send(client, phase, now)
                if due >= phase.measure_from:
                    index = bucket(max(0.0, now - due))
                    phase.lag[index] = phase.lag.get(index, 0) + 1
            base += interval

    # -- accounting ---------------------------------------------------------------------

    async def settle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Wait until every client has every message of its room (or the timeout)."""
        phase = self.phase
        assert phase is not None and phase.id == command["id"]
        sent: dict[int, int] = {int(k): v for k, v in command["sent"].items()}
        started = time.monotonic()
        deadline = started + command["timeout"]
        while True:
            missing, extra = self.shortfall(sent)
            if not missing or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.01)
        settled = time.monotonic() - started
        self.phase = None
        expected = sum(sent[s] for c in self.clients for s in self.room_senders[c.room])
        errors, self.errors = self.errors[:10], []
        return {
            "op": "result",
            "id": phase.id,
            "expected": expected,
            "received": phase.received,
            "missing": missing,
            "extra": extra,
            "reordered": phase.reordered,
            "stray": self.stray,
            "received_window": phase.received_window,
            "sent_window": phase.sent_window,
            "skipped": phase.skipped,
            "latency": phase.latency,
            "lag": phase.lag,
            "settle_seconds": settled,
            "errors": errors,
        }

    def shortfall(self, sent: dict[int, int]) -> tuple[int, int]:
        """(copies still missing, copies beyond what was sent) over every client."""
        missing = extra = 0
        for client in self.clients:
            counts = client.counts
            for sender in self.room_senders[client.room]:
                gap = sent.get(sender, 0) - counts.get(sender, 0)
                if gap > 0:
                    missing += gap
                else:
                    extra -= gap
        return missing, extra

    async def close(self) -> dict[str, Any]:
        """Close every socket."""
        if self.sending is not None:
            self.sending.cancel()
        connections = [c.connection for c in self.clients if c.connection is not None]
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
        return {"op": "bye"}


async def serve() -> None:
    """Answer the parent's commands until ``quit`` or the end of stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    generator = LoadGenerator()
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            command = json.loads(line)
            op = command["op"]
            if op == "connect":
                answer = await generator.connect(command)
            elif op == "phase":
                answer = await generator.run_phase(command)
            elif op == "expect":
                answer = await generator.settle(command)
            elif op == "quit":
                break
            else:
                answer = {"op": "error", "error": f"unknown op {op!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        bye = await generator.close()
    sys.stdout.write(json.dumps(bye) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command loop (on uvloop when installed), for at most LIFETIME seconds."""

    async def bounded() -> None:
        await asyncio.wait_for(serve(), LIFETIME)

    try:
        import uvloop
    except ImportError:
        asyncio.run(bounded())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(bounded())


if __name__ == "__main__":
    main()
