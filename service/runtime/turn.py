"""A turn: what one delivery (or one constructor run) recorded and wants to send."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.events import types
from service.events.fold import ObjectState, Undo
from service.runtime.delivery import Delivery

#: ("send", socket_id, data) or ("close", socket_id, (code, reason)).
Output = tuple[str, str, object]


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
    #: Events before this index were committed while the turn ran (a restore request is
    #: durable before it returns): no rollback takes them back, and the turn's own commit
    #: carries only the events after them.
    committed: int = 0


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
