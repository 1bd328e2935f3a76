"""An operator's changes to a live object (restore, close a socket, send a frame), as the
node's front ends ask for them, and what they come to.

Each is work for the object like any other: the node routes it to the object's owner, which
runs it as one of its turns, in order with the object's other work, and records it in the
object's own log with who did it. A fork makes a new object instead, with no owner to ask:
the history does that (``service.ports.history.HistoryService.fork``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The kinds of action: storage back to a seq's state, a socket closed, a frame sent.
Kind = Literal["restore", "close", "send"]


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """One change an operator asks of an object."""

    kind: Kind
    #: Who asks, as the log records it (``NAME (admin-api from ADDRESS)``).
    by: str
    #: A restore's target: the seq whose state storage and the alarm go back to.
    seq: int = 0
    #: The socket a close or a send is for.
    socket_id: str = ""
    #: A close's code and reason.
    code: int = 1000
    reason: str = ""
    #: A send's frame: text, or bytes for a binary frame.
    data: str | bytes = ""


@dataclass(frozen=True, slots=True)
class Operated:
    """An action done and committed."""

    #: The seq of the event that records it in the object's log.
    seq: int
    #: A restore's: the keys storage holds now, and the alarm (epoch ms, or None).
    keys: int = 0
    alarm_ms: int | None = None


class OperatorActionError(Exception):
    """An action the object's owner refused; the message says why."""


class SocketNotOpenError(OperatorActionError, LookupError):
    """The socket is not open on the object: it never was one of its sockets, or it closed."""


class SocketClosingError(OperatorActionError):
    """The socket is closing already (the object or an operator closed it; its connection
    has not ended yet): it takes no frame and no second close."""


class PointOutOfRangeError(OperatorActionError, ValueError):
    """A restore's target is past the object's newest state."""


#: The refusals a reply can carry across nodes, by name.
REFUSALS: dict[str, type[OperatorActionError]] = {
    "socket_not_open": SocketNotOpenError,
    "socket_closing": SocketClosingError,
    "out_of_range": PointOutOfRangeError,
}
