"""What happens on the sockets a node holds, reported to the runtime by the gateway.

The runtime's inbound port for socket events: the gateway says what it saw, in the order it
saw it, and never builds the runtime's work items itself. Routing to objects owned by other
nodes plugs in behind it.
"""

from __future__ import annotations

from typing import Protocol

#: The close reason of a connection that ended without a Close frame (code 1006).
DISCONNECTED_REASON = "WebSocket disconnected without sending Close frame."


class SocketEvents(Protocol):
    """A socket's frames and its end, for the object that accepted it."""

    def message(self, object_id: str, socket_id: str, data: str | bytes) -> None:
        """A text or binary frame arrived (auto-responses are answered before this)."""

    def closed(
        self, object_id: str, socket_id: str, code: int, reason: str, was_clean: bool
    ) -> None:
        """The connection ended, cleanly (a Close frame) or not (1006)."""

    def errored(self, object_id: str, socket_id: str, error: str, code: int) -> None:
        """The connection failed (a protocol error; the gateway has sent its Close frame)."""
