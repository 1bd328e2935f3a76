"""A chat room with bounded state, for the wake benchmark.

Each inbound message is recorded (``message_received``) and stored in a ring of the last
``RING`` messages plus a counter, with one ``put`` (one ``storage_put`` event): two events
per message, while the state never holds more than ``RING`` + 1 keys. However long the
history grows, the snapshot stays the same size, so a wake's cost can only depend on the
history's length, not on the state's size.

The handler answers with JSON telling the benchmark when it started (``time.monotonic()``,
system-wide on Linux, so the client can compare it with its own clock), when this instance
was constructed, and how many turns the instance ran before: 0 means the message woke it.
"""

from __future__ import annotations

import json
import time

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair
from service.api.context import DurableObjectState
from service.api.namespace import Env

#: Messages kept in storage (keys ``msg:00`` .. ``msg:99``).
RING = 100


def ring_key(count: int) -> str:
    """The storage key of message number ``count`` (0-based)."""
    return f"msg:{count % RING:02d}"


class Room(DurableObject):
    """Accepts hibernatable sockets; stores each message in the ring and answers its sender."""

    def __init__(self, ctx: DurableObjectState, env: Env) -> None:
        super().__init__(ctx, env)
        self.constructed_at = time.monotonic()
        self.turns = 0

    async def fetch(self, request: Request) -> Response:
        """Accept a WebSocket into the room."""
        self.turns += 1
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        """Store the message in the ring; tell the sender when this handler started."""
        started = time.monotonic()
        turns, self.turns = self.turns, self.turns + 1
        count = self.ctx.storage.kv.get("count") or 0
        await self.ctx.storage.put({ring_key(count): message, "count": count + 1})
        ws.send(
            json.dumps(
                {
                    "handler_at": started,
                    "constructed_at": self.constructed_at,
                    "turns_before": turns,
                    "count": count,
                }
            )
        )


app = Application({"ROOM": Room})
