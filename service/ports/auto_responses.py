"""An object's WebSocket auto-response, answered by the gateway without waking the object.

Not output of a turn: the pair takes effect as soon as it is set (and again when the object
wakes), without waiting for a commit, and the timestamp is read back by the object's
``ctx``. It lives with the sockets a node holds, so it is a port of its own rather than
part of the socket output that routing to other nodes plugs into. Implemented by the
gateway's socket registry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class AutoResponses(Protocol):
    """The request/response pair a node answers on an object's sockets, and when it did."""

    def set_auto_response(self, object_id: str, pair: tuple[str, str] | None) -> None:
        """Answer ``pair[0]`` with ``pair[1]`` on the object's sockets (None: stop)."""

    def auto_response_timestamp(self, socket_id: str) -> datetime | None:
        """When an auto-response was last sent on the socket, if ever."""
