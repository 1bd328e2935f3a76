"""An operator's action, run by the object's owner as one of its turns.

The turn runs no user code. It records one event, which says who did it, and makes the
output that goes with it; like any turn's, the event is committed by the owner's flush
(a fenced former owner commits nothing), its output leaves once that commit has landed,
and the caller is answered then (a routed one through the outbox, in the same commit).

- **restore**: storage and the alarm go back to their state after a seq, rebuilt by the
  one replay, recorded as ``storage_restored`` (with ``by``); once it is committed the
  object is reset, so its next delivery finds it rebuilt on the restored state, its
  constructor run again, as after a restore the object asks for and ``ctx.abort()``.
- **close**: ``operator_close_sent``, and the Close frame: as after ``ws.close()`` in the
  object, the socket stays listed (closing) until its connection ends, then
  ``websocket_close`` runs and ``websocket_closed`` takes it out of presence.
- **send**: ``operator_message_sent``, and the frame.

A close or a send refuses a socket that is not open (404 at the API) or is closing (409).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Protocol

from service.api import websocket
from service.api.core import ObjectCore
from service.events import fold, types, values
from service.events.fold import ObjectState
from service.ports.operator_actions import (
    REFUSALS,
    Operated,
    OperatorAction,
    OperatorActionError,
)


class Operand(ObjectCore, Protocol):
    """The live object, as an operator's turn changes it (``object_core.Core``)."""

    key: str

    async def state_at(self, seq: int) -> ObjectState:
        """The object's state after its event ``seq``, rebuilt by the one replay."""


@dataclass(frozen=True, slots=True)
class OperatorOutcome:
    """What an operator's turn came to: done (``operated``) or refused (``refused``, one of
    ``REFUSALS``, and why)."""

    operated: Operated | None = None
    refused: str | None = None
    message: str = ""
    #: Set for a restore: the object is reset, for this reason, once the turn is committed.
    rebuild: str | None = None

    def result(self) -> Operated:
        """What it came to, or the refusal raised."""
        if self.operated is not None:
            return self.operated
        raise REFUSALS.get(self.refused or "", OperatorActionError)(self.message)

    def to_reply(self) -> dict[str, Any]:
        """The outcome as a reply to another node carries it."""
        operated = self.operated
        if operated is None:
            return {"kind": "operated", "refused": self.refused, "message": self.message}
        return {
            "kind": "operated",
            "seq": operated.seq,
            "keys": operated.keys,
            "alarm_ms": operated.alarm_ms,
        }

    @classmethod
    def from_reply(cls, body: dict[str, Any]) -> OperatorOutcome:
        if body.get("refused") is not None:
            return cls(refused=str(body["refused"]), message=str(body.get("message", "")))
        alarm = body.get("alarm_ms")
        return cls(
            Operated(
                int(body["seq"]),
                keys=int(body.get("keys", 0)),
                alarm_ms=None if alarm is None else int(alarm),
            )
        )


async def run(operand: Operand, action: OperatorAction) -> OperatorOutcome:
    """Run ``action`` in the running turn."""
    if action.kind == "restore":
        return await _restore(operand, action)
    state = operand.state
    socket = state.sockets.get(action.socket_id)
    if socket is None:
        return OperatorOutcome(
            refused="socket_not_open",
            message=f"socket {action.socket_id} is not open on this object (it never was one "
            "of its sockets, or it has closed): see GET /admin/api/presence?object=...",
        )
    if socket.close_sent:
        return OperatorOutcome(
            refused="socket_closing",
            message=f"socket {action.socket_id} is closing already (it was closed; its "
            "connection has not ended yet): it takes no frame and no second close",
        )
    if action.kind == "close":
        operand.record(
            types.OperatorCloseSent(
                socket_id=action.socket_id, code=action.code, reason=action.reason, by=action.by
            )
        )
        # The object sees the socket closing, as after its own ws.close().
        handle = operand.handles.get(action.socket_id)
        if handle is not None:
            websocket.close_started(handle)
        operand.close_socket(action.socket_id, action.code, action.reason)
    else:
        operand.record(_sent(action))
        operand.send(action.socket_id, action.data)
    return OperatorOutcome(Operated(state.seq))


def _sent(action: OperatorAction) -> types.OperatorMessageSent:
    if isinstance(action.data, bytes):
        binary = base64.b64encode(action.data).decode("ascii")
        return types.OperatorMessageSent(socket_id=action.socket_id, binary=binary, by=action.by)
    text = values.encode_str(action.data)
    return types.OperatorMessageSent(socket_id=action.socket_id, text=text, by=action.by)


async def _restore(operand: Operand, action: OperatorAction) -> OperatorOutcome:
    newest = operand.state.seq
    if not 0 <= action.seq <= newest:
        return OperatorOutcome(
            refused="out_of_range",
            message=f"the object's events end at seq {newest}: there is no state after seq "
            f"{action.seq} to restore",
        )
    target = await operand.state_at(action.seq)
    operand.record(fold.restore_to(target, action.by))
    seq = operand.state.seq
    return OperatorOutcome(
        Operated(seq, keys=len(target.storage), alarm_ms=target.alarm_ms),
        rebuild=f"storage restored to its state after seq {action.seq} by {action.by} (event "
        f"{seq}): the object is rebuilt on it",
    )
