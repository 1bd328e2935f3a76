"""Client frames checked where aiohttp does not check them; the one module that relies on
aiohttp's internals to do it.

aiohttp's reader accepts an unmasked client frame, which RFC 6455 (section 5.1) says must
close the connection, and its size check is exclusive where our limit is inclusive, so its
error would name a limit one byte too large. A FrameGuard reads frame headers only, in
front of aiohttp's reader and on the same bytes: it passes them on until a frame breaks a
rule, then ends the connection with a WebSocketError that ``receive()`` raises after every
message that came before the bad frame. Scanning a header costs a few integer operations
per frame; payloads are not touched. Seeing every read, the guard also tells the heartbeat
(``SocketRegistry.heartbeats``) whether the client has been heard from.

The aiohttp internals used here (``tests/unit/test_frame_guard.py`` checks each, so that an
aiohttp upgrade that changes one fails a test rather than a client):

- ``WebSocketResponse._post_start(request, protocol, writer)`` runs once the 101 is
  written, and installs the reader with ``request.protocol.set_parser``;
- the RequestHandler keeps that reader in ``_payload_parser``, calls ``feed_data(data)`` on
  it for each read (a result ``(True, _)`` closes the connection) and ``feed_eof()`` at the
  end, and keeps the bytes that arrived with the handshake in ``_message_tail`` until
  ``set_parser`` feeds them;
- ``WebSocketResponse._reader`` is the message queue: after ``set_exception(error)`` on it,
  ``receive()`` returns the messages already queued, then answers ``error`` by calling
  ``close(code=error.code)``; ``exception()`` returns that error.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_websocket import WebSocketError

#: Close codes (RFC 6455, section 7.4.1).
PROTOCOL_ERROR = 1002
MESSAGE_TOO_BIG = 1009

UNMASKED = "Client frames must be masked (RFC 6455, section 5.1)."

#: Longest close reason a Close frame can carry (a control frame holds 125 bytes).
_REASON_BYTES = 123


def too_large(size: int, limit: int) -> str:
    """The reference's reason (and error text) for a message over the size limit."""
    return f"Message is too large: {size} > {limit}"


class FrameGuard:
    """Scans frame headers in front of aiohttp's WebSocketReader (see the module docstring)."""

    __slots__ = (
        "_head",
        "_limit",
        "_message",
        "_parser",
        "_queue",
        "_skip",
        "error",
        "heard",
        "silent_rounds",
    )

    def __init__(self, parser: Any, queue: Any, limit: int) -> None:
        self._parser = parser
        self._queue = queue
        self._limit = limit
        #: The start of a frame header that the previous read cut short.
        self._head = b""
        #: Payload bytes of the current frame not read yet.
        self._skip = 0
        #: Payload bytes of the current data message so far (its fragments added up).
        self._message = 0
        #: The rule a frame broke, once one did; nothing is read after it.
        self.error: WebSocketError | None = None
        #: Something arrived since the heartbeat last looked (it clears this).
        self.heard = True
        #: Heartbeat rounds in a row without anything from the client.
        self.silent_rounds = 0

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.heard = True
        if self.error is not None:
            return True, b""
        bad = self._scan(data)
        if bad < 0:
            result: tuple[bool, bytes] = self._parser.feed_data(data)
            return result
        # The frames before the bad one are delivered; the connection ends at it.
        if bad and self._parser.feed_data(data[:bad])[0]:
            return True, b""  # aiohttp found an earlier error: that one is reported
        assert self.error is not None
        self._queue.set_exception(self.error)
        return True, b""

    def feed_eof(self) -> None:
        self._parser.feed_eof()

    def _scan(self, data: bytes) -> int:
        """-1 if every header in ``data`` is fine, else where the bad frame starts in it."""
        head = self._head
        if head:
            self._head = b""
            data = head + data
        end = len(data)
        position = 0
        while True:
            skip = self._skip
            if skip:
                if skip >= end - position:
                    self._skip = skip - (end - position)
                    return -1
                position += skip
                self._skip = 0
            if end - position < 2:
                self._head = data[position:]
                return -1
            first = data[position]
            second = data[position + 1]
            if not second & 0x80:
                return self._refuse(position - len(head), PROTOCOL_ERROR, UNMASKED)
            length = second & 0x7F
            header = 6 if length < 126 else 8 if length == 126 else 14
            if end - position < header:
                self._head = data[position:]
                return -1
            if length == 126:
                length = int.from_bytes(data[position + 2 : position + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[position + 2 : position + 10], "big")
            opcode = first & 0x0F
            if opcode <= 2:  # continuation, text or binary: part of a data message
                self._message = length if opcode else self._message + length
                if self._message > self._limit:
                    reason = too_large(self._message, self._limit)
                    return self._refuse(position - len(head), MESSAGE_TOO_BIG, reason)
            position += header
            self._skip = length

    def _refuse(self, position: int, code: int, reason: str) -> int:
        self.error = WebSocketError(code, reason)
        return max(position, 0)


class GuardedWebSocketResponse(web.WebSocketResponse):
    """aiohttp's WebSocketResponse with a FrameGuard in front of its reader, and the text of
    the error that ended a connection as the reason of its Close frame."""

    # Slots, not the instance dict: aiohttp's response has so many attributes that two more
    # make CPython give each instance a dict of its own, 2 KiB per socket.
    __slots__ = ("_guard", "_limit")

    def __init__(self, *, max_message_bytes: int, **options: Any) -> None:
        # aiohttp refuses a message of exactly max_msg_size bytes; the guard checks our
        # (inclusive) limit first, so aiohttp's check only remains for decompressed sizes.
        super().__init__(max_msg_size=max_message_bytes + 1, **options)
        self._limit = max_message_bytes
        self._guard: FrameGuard | None = None

    def _post_start(self, request: Any, protocol: Any, writer: Any) -> None:
        # aiohttp has no public hook for a frame parser: the guard takes the place of the
        # request handler's own (and the bytes it read past the upgrade), see the class.
        handler = request.protocol
        early, handler._message_tail = handler._message_tail, b""  # noqa: SLF001
        super()._post_start(request, protocol, writer)
        parser = handler._payload_parser  # noqa: SLF001
        guard = self._guard = FrameGuard(parser, self._reader, self._limit)
        handler._payload_parser = guard  # noqa: SLF001
        if early and guard.feed_data(early)[0]:
            handler.close()

    @property
    def guard(self) -> FrameGuard | None:
        """The socket's guard, once the 101 is written."""
        return self._guard

    def describe(self, error: WebSocketError) -> str:
        """The text of an error that ended the connection, naming our limit, not aiohttp's."""
        guard = self._guard
        if error.code == MESSAGE_TOO_BIG and (guard is None or error is not guard.error):
            return f"Message is too large: more than {self._limit} bytes once decompressed"
        return str(error)

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        reader = self._reader
        error = reader.exception() if reader is not None else None
        if not message and isinstance(error, WebSocketError) and error.code == code:
            # receive() closing for a protocol error: the Close frame says which.
            message = _truncated(self.describe(error))
        return await super().close(code=code, message=message, drain=drain)


def _truncated(reason: str) -> bytes:
    return reason.encode("utf-8")[:_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")
