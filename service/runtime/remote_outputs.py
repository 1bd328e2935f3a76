"""A turn's output for sockets another node holds, as the outbox rows its commit writes.

A turn queues its output (``turn.Output``) for every socket it addresses; those this node
holds go through the output gate, the others are taken out of the turn here and become
outbox rows (``RemoteOutput``), in the turn's order, for the flush to address to the node
holding each socket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from service.ports.records import RemoteOutput
from service.runtime.turn import Resume, Turn


def take(turn: Turn, object_id: str, here: Callable[[str], bool]) -> list[RemoteOutput] | None:
    """Take the turn's output for sockets not ``here`` out of it, as outbox rows (None: it
    has none, and the turn is left as it is)."""
    outputs = turn.outputs
    # Most turns send only to this node's sockets: then nothing is copied.
    for first, (_, socket_id, _) in enumerate(outputs):  # noqa: B007
        if not here(socket_id):
            break
    else:
        return None
    outbox: list[RemoteOutput] = []
    local = outputs[:first]
    for output in outputs[first:]:
        kind, socket_id, payload = output
        if here(socket_id):
            local.append(output)
        else:
            outbox.append(_row(kind, socket_id, payload, object_id))
    turn.outputs = local
    return outbox


def _row(kind: str, socket_id: str, payload: object, object_id: str) -> RemoteOutput:
    if kind == "resume":
        # The holding node reads the missed messages from the log, once this commit (and so
        # every event up to the accept) is in it, before the socket's later rows.
        resume = cast(Resume, payload)
        span = {
            "object_id": object_id,
            "after": resume.after,
            "last_seq": resume.last_seq,
            "tags": list(resume.tags),
            "limit": resume.limit,
        }
        return RemoteOutput(socket_id, "resume", reply=span)
    if kind == "close":
        code, reason = cast(tuple[int | None, str], payload)
        return RemoteOutput(socket_id, "close", code=code, reason=reason)
    if kind == "auto_response":
        pair = cast(tuple[str, str] | None, payload)
        change = {"object_id": object_id, "pair": None if pair is None else list(pair)}
        return RemoteOutput(socket_id, "auto_response", reply=change)
    # A send, or a published message's frame.
    data = cast(str | bytes, payload if kind == "send" else cast(tuple[Any, int], payload)[0])
    if isinstance(data, str):
        return RemoteOutput(socket_id, "text", text=data)
    return RemoteOutput(socket_id, "binary", data=data)
