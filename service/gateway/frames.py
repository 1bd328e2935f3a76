"""Server-to-client WebSocket data frames (RFC 6455, section 5.2), built once per payload.

aiohttp writes every frame with a transport write of its own: a ``send()`` system call
per frame. The output gate releases frames in batches (everything a commit covered), so
the gateway writes all the frames a socket has pending in one call, and a payload sent to
many sockets is framed once. Only what a server sends uncompressed is built here: final,
unmasked, uncompressed text and binary frames. Connections that negotiated compression
use aiohttp's writer.
"""

from __future__ import annotations

import struct

TEXT = 0x1
BINARY = 0x2

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def build(payload: str | bytes) -> bytes:
    """The whole frame (header and payload) for a text (``str``) or binary payload."""
    if isinstance(payload, str):
        data, first = payload.encode("utf-8"), 0x80 | TEXT
    else:
        data, first = payload, 0x80 | BINARY
    size = len(data)
    if size < 126:
        header = _SHORT.pack(first, size)
    elif size < 65536:
        header = _MEDIUM.pack(first, 126, size)
    else:
        header = _LONG.pack(first, 127, size)
    return header + data


class FrameCache:
    """Frames of the payloads of one write pass, by value: a broadcast is framed once."""

    __slots__ = ("_frames",)

    def __init__(self) -> None:
        self._frames: dict[str | bytes, bytes] = {}

    def frame(self, payload: str | bytes) -> bytes:
        found = self._frames.get(payload)
        if found is None:
            found = self._frames[payload] = build(payload)
        return found
