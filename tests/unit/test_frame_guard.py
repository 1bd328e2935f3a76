"""The frame guard in front of aiohttp's own reader and queue, and the aiohttp internals the
guard relies on (so that an aiohttp upgrade that changes them fails here, by name)."""

from __future__ import annotations

import asyncio
import inspect
import os
import struct

import pytest
from aiohttp import web, web_protocol
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_websocket import WebSocketError, WebSocketReader

from service.gateway.frame_guard import UNMASKED, FrameGuard

LIMIT = 4096


def frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """One client frame as RFC 6455 section 5.2 lays it out."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def guarded() -> tuple[FrameGuard, WebSocketDataQueue]:
    """A guard in front of aiohttp's real reader, as the gateway sets them up."""
    loop = asyncio.get_running_loop()
    queue = WebSocketDataQueue(BaseProtocol(loop), 1 << 16, loop=loop)
    reader = WebSocketReader(queue, LIMIT + 1, compress=False, decode_text=True)
    return FrameGuard(reader, queue, LIMIT), queue


async def messages(queue: WebSocketDataQueue, count: int) -> list[object]:
    return [(await queue.read()).data for _ in range(count)]


async def test_good_frames_pass_whatever_the_reads_cut() -> None:
    stream = (
        frame(0x1, b"hello")
        + frame(0x2, b"\x00" * 300)
        + frame(0x1, b"y" * LIMIT)
        + frame(0x9, b"ping")
    )
    for step in (1, 2, 3, 7, 64, len(stream)):
        guard, queue = guarded()
        for start in range(0, len(stream), step):
            assert guard.feed_data(stream[start : start + step]) == (False, b"")
        assert await messages(queue, 4) == ["hello", b"\x00" * 300, "y" * LIMIT, b"ping"]
        assert guard.error is None


async def test_an_unmasked_frame_ends_the_connection_after_the_frames_before_it() -> None:
    guard, queue = guarded()
    stream = frame(0x1, b"one") + frame(0x1, b"two") + frame(0x1, b"bare", masked=False)
    assert guard.feed_data(stream) == (True, b"")
    assert await messages(queue, 2) == ["one", "two"]
    with pytest.raises(WebSocketError) as raised:
        await queue.read()
    assert (raised.value.code, str(raised.value)) == (1002, UNMASKED)
    # Nothing more is read.
    assert guard.feed_data(frame(0x1, b"later")) == (True, b"")


async def test_an_unmasked_header_split_across_reads_is_found() -> None:
    guard, queue = guarded()
    stream = frame(0x1, b"ok") + frame(0x8, b"", masked=False)
    cut = len(stream) - 1  # the bad frame's first byte ends the first read
    assert guard.feed_data(stream[:cut]) == (False, b"")
    assert guard.feed_data(stream[cut:]) == (True, b"")
    assert await messages(queue, 1) == ["ok"]
    with pytest.raises(WebSocketError):
        await queue.read()


@pytest.mark.parametrize(
    ("frames", "size"),
    [
        ([frame(0x1, b"x" * (LIMIT + 1))], LIMIT + 1),
        # Fragments add up; a ping between them does not count.
        (
            [
                frame(0x2, b"a" * 3000, fin=False),
                frame(0x9, b"p"),
                frame(0x0, b"b" * 2000),
            ],
            5000,
        ),
    ],
)
async def test_a_message_over_the_limit_names_both_sizes(frames: list[bytes], size: int) -> None:
    guard, queue = guarded()
    assert guard.feed_data(b"".join(frames)) == (True, b"")
    if len(frames) > 1:
        assert await messages(queue, 1) == [b"p"]
    with pytest.raises(WebSocketError) as raised:
        await queue.read()
    assert raised.value.code == 1009
    assert str(raised.value) == f"Message is too large: {size} > {LIMIT}"


async def test_a_huge_declared_length_is_refused_from_its_header() -> None:
    guard, queue = guarded()
    header = struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 40) + os.urandom(4)
    assert guard.feed_data(header) == (True, b"")
    with pytest.raises(WebSocketError, match=rf"^Message is too large: {1 << 40} > {LIMIT}$"):
        await queue.read()


async def test_a_message_of_exactly_the_limit_passes() -> None:
    guard, queue = guarded()
    stream = frame(0x1, b"a" * 1000, fin=False) + frame(0x0, b"b" * (LIMIT - 1000))
    assert guard.feed_data(stream) == (False, b"")
    assert await messages(queue, 1) == ["a" * 1000 + "b" * (LIMIT - 1000)]


async def test_an_earlier_error_of_aiohttps_reader_is_the_one_reported() -> None:
    guard, queue = guarded()
    reserved = bytearray(frame(0x1, b"rsv"))
    reserved[0] |= 0x20  # RSV2: aiohttp refuses it
    assert guard.feed_data(bytes(reserved) + frame(0x1, b"bare", masked=False)) == (True, b"")
    with pytest.raises(WebSocketError) as raised:
        await queue.read()
    assert raised.value.code == 1002 and str(raised.value) != UNMASKED


def test_the_aiohttp_internals_the_guard_uses_are_there() -> None:
    """See service/gateway/frame_guard.py: each of these is relied on by name."""
    assert list(inspect.signature(web.WebSocketResponse._post_start).parameters) == [
        "self",
        "request",
        "protocol",
        "writer",
    ]
    slots = web_protocol.RequestHandler.__slots__
    assert "_payload_parser" in slots and "_message_tail" in slots
    assert "set_parser" in vars(web_protocol.RequestHandler)
    assert callable(WebSocketDataQueue.set_exception) and callable(WebSocketDataQueue.exception)
    assert "_reader" in vars(web.WebSocketResponse)
    source = inspect.getsource(web.WebSocketResponse.receive)
    assert "await self.close(code=exc.code)" in source
