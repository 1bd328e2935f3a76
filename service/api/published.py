"""Published messages (``ctx.publish``): their event, and the frames that carry them.

A published message is an event of the object's log, and its seq there is the message's
position: gapless per object, kept across restarts and moves between nodes. Every frame
that carries one tells the client that position, so that it can resume after the last one
it saw (``ctx.accept_websocket(ws, tags, resume_after=seq)``):

- a JSON value: a text frame ``{"seq": 17, "data": <the value>}``;
- bytes: a binary frame, the seq as 8 bytes (unsigned, big-endian), then the bytes.

Live frames and replayed ones are built here, from what the log holds, so they cannot
differ.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pydantic_core

from service.events import types, values

#: Length of the seq that starts a binary frame.
SEQ_BYTES = 8

#: Close code of a socket whose resume position is past the object's last seq (it came
#: from another log: a restored database, another object). HTTP's "Range Not Satisfiable".
RESUME_AHEAD_CODE = 4416
#: Close code of a socket whose missed messages could not be read (the database failed).
RESUME_FAILED_CODE = 1011
RESUME_FAILED_REASON = "Could not read the missed messages; reconnect to resume."

#: One encoder for every frame: json.dumps with options builds a new one per call, which
#: costs as much as the encoding when a resume sends thousands.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def event(data: Any, tag: str | None) -> types.MessagePublished:
    """The event that records ``data`` (bytes, or what JSON holds); TypeError otherwise."""
    if isinstance(data, bytes | bytearray | memoryview):
        binary = base64.b64encode(bytes(data)).decode("ascii")
        return types.MessagePublished(tag=tag, binary=binary)
    return types.MessagePublished(tag=tag, data=values.encode(data))


def frame(seq: int, message: types.MessagePublished) -> str | bytes:
    """The frame that carries ``message`` (at ``seq``) to a client."""
    if message.binary is not None:
        return binary_frame(seq, message.binary)
    # The JSON text the log stores for the field (``types.to_data`` writes the same).
    return text_frame(seq, pydantic_core.to_json(message.data).decode())


def binary_frame(seq: int, binary: str) -> bytes:
    """The frame of bytes published at ``seq`` (``binary``: their base64)."""
    return seq.to_bytes(SEQ_BYTES, "big") + base64.b64decode(binary)


def text_frame(seq: int, data: str) -> str:
    """The frame of a JSON value published at ``seq``; ``data`` is its encoded form's JSON
    text as the log holds it (``events.data->'data'``), so that a resume, which reads that
    text, builds the live frame again, byte for byte, without decoding the event.

    Encoded values are the plain values, except for the ``$``-key wrappers of bytes and of
    strings holding NUL (``service.events.values``): text without ``"$`` has none, and goes
    on the wire as it is.
    """
    if '"$' not in data:
        return f'{{"seq":{seq},"data":{data}}}'
    try:
        return _ENCODER.encode({"seq": seq, "data": values.decode(json.loads(data))})
    except TypeError:
        raise TypeError(
            "publish() takes bytes, or a value JSON can hold; bytes inside such a value "
            "cannot be sent as JSON."
        ) from None


def truncated(seq: int) -> str:
    """The text frame that starts a truncated resume: messages up to ``seq`` were missed
    and are not replayed; the newest ones follow."""
    return json.dumps({"seq": seq, "truncated": True}, separators=(",", ":"))


def ahead_reason(after: int, last: int) -> str:
    """Why a socket is closed with ``RESUME_AHEAD_CODE`` (at most 123 bytes)."""
    return f"Cannot resume after seq {after}: this object's last seq is {last}."
