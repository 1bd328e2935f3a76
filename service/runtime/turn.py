"""A turn: what one delivery (or one constructor run) recorded and wants to send."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from service.events import types
from service.events.fold import ObjectState, Undo
from service.runtime.delivery import Delivery
from service.runtime.object_logs import TurnLogs

#: ("send", socket_id, data), ("close", socket_id, (code, reason)), ("publish", socket_id,
#: (frame, events)): a published message's frame, sent unless the turn is rolled back to
#: fewer than ``events`` events (its own is the last of them), ("resume", socket_id,
#: Resume), or ("auto_response", socket_id, pair): the object's auto-response pair (None:
#: none), for the node holding a socket another node holds (only such sockets get it).
Output = tuple[str, str, object]


@dataclass(frozen=True, slots=True)
class Resume:
    """A socket's missed messages to send before anything else: those published after seq
    ``after`` up to ``last_seq`` whose tag is None or one of ``tags``, at most ``limit``
    (the newest, after a truncation frame, if there are more)."""

    after: int
    last_seq: int
    tags: tuple[str, ...]
    limit: int


@dataclass(slots=True)
class Turn:
    delivery: Delivery | None = None
    events: list[types.Event] = field(default_factory=list)
    undos: list[Undo] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    consumed_inbox: list[int] = field(default_factory=list)
    #: (socket_id, hibernatable) of sockets accepted in this turn.
    accepted: list[tuple[str, bool]] = field(default_factory=list)
    #: Events before this index record facts (an inbound frame, a fired alarm) and stay
    #: even if the handler raises; events after it are the handler's and are undone.
    kept: int = 0
    #: An event of this turn sets, deletes or clears the alarm.
    alarm_changed: bool = False
    #: An event of this turn changes the auto-response pair.
    auto_response_changed: bool = False
    #: Events before this index were committed while the turn ran (a restore request is
    #: durable before it returns): no rollback takes them back, and the turn's own commit
    #: carries only the events after them.
    committed: int = 0
    #: What its code logs while it runs (``object_logs``), committed with its last events.
    logs: TurnLogs | None = None


class ResetRequested(BaseException):
    """Unwinds user code when the object must be reset (abort, event timeout).

    A BaseException so that a handler's ``except Exception`` cannot swallow it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def rollback(state: ObjectState, turn: Turn, mark: int) -> None:
    """Undo the turn's events after ``mark`` (newest first) and forget them; those already
    committed stay."""
    mark = max(mark, turn.committed)
    while len(turn.events) > mark:
        turn.events.pop()
        undo = turn.undos.pop()
        undo(state)
    turn.accepted = [a for a in turn.accepted if a[0] in state.sockets]
    # A message whose event is gone must not reach anyone: its seq will be another event's.
    # Nor is a socket whose accept is gone resumed.
    turn.outputs = [output for output in turn.outputs if _survives(output, mark, state)]


def _survives(output: Output, mark: int, state: ObjectState) -> bool:
    kind = output[0]
    if kind == "publish":
        return cast(tuple[Any, int], output[2])[1] <= mark
    if kind == "resume":
        return output[1] in state.sockets
    return True
