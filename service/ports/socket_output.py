"""Where the runtime's socket output goes: what the output gate releases, in order.

Everything here is output of a turn: it leaves only once the turn's commit has landed, and
in turn order. That is why ``expect`` is here beside ``send`` and ``close``: a socket
accepted by a turn is announced to the gateway with that turn's output, ahead of its
frames, and never if the turn does not commit. Implemented by the gateway's socket
registry for the sockets this node holds (``holds``). Output for a socket another node
holds does not come here from the object: it is written to the outbox in the turn's own
commit, and the holding node's outbox delivery brings it here, on that node, in order
(``service.runtime.outbox_delivery``).
"""

from __future__ import annotations

from typing import Protocol


class SocketOutput(Protocol):
    """Frames, closes and accepted sockets released by an object's output gate."""

    def expect(self, socket_id: str, object_id: str, binding: str, hibernatable: bool) -> None:
        """A socket was accepted; buffer frames for it until its connection is attached."""

    def send(self, socket_id: str, data: str | bytes) -> None: ...

    def close(self, socket_id: str, code: int | None, reason: str) -> None: ...

    def holds(self, socket_id: str) -> bool:
        """Whether this node holds the socket (its connection, hibernated or not, or an
        accept announced for it): if not, another node does, and its output goes there."""
