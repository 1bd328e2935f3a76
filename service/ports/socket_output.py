"""Where the runtime's socket output goes: frames and closes released by the output gate.

Implemented by the gateway's socket registry for the sockets this node holds; routing to
sockets held by other nodes plugs in here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class SocketTransport(Protocol):
    """The gateway's socket registry: where released frames and closes go."""

    def expect(self, socket_id: str, object_id: str, binding: str, hibernatable: bool) -> None:
        """A socket was accepted; buffer frames for it until its connection is attached."""

    def send(self, socket_id: str, data: str | bytes) -> None: ...

    def close(self, socket_id: str, code: int | None, reason: str) -> None: ...

    def set_auto_response(self, object_id: str, pair: tuple[str, str] | None) -> None: ...

    def auto_response_timestamp(self, socket_id: str) -> datetime | None: ...
