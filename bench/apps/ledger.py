"""A room that keeps a ledger of its messages, for the rerun benchmark.

Each inbound message is recorded (``message_received``) and stored with one ``put`` of the
counter and a ring slot holding the text, its sender and the time it was taken (a clock
reading, as real apps' records carry: the rerun compares it as an offset from its turn);
the sender gets an acknowledgement with the count. Two events per message, and a state
that never holds more than ``RING`` + 1 keys.
"""

from __future__ import annotations

import time

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair

#: Messages kept in storage.
RING = 100


class Ledger(DurableObject):
    """Accepts hibernatable sockets; stores each message; acknowledges it to its sender."""

    async def fetch(self, request: Request) -> Response:
        """Accept a WebSocket; its attachment names the client."""
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        server.serialize_attachment({"client": request.query.get("client", "")})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        """Store the message in the ring; acknowledge it with its number."""
        kv = self.ctx.storage.kv
        count = (kv.get("count") or 0) + 1
        entry = {
            "text": message,
            "by": ws.deserialize_attachment()["client"],
            "at": int(time.time() * 1000),
        }
        await self.ctx.storage.put({f"entry:{count % RING:02d}": entry, "count": count})
        ws.send(str(count))


app = Application({"LEDGER": Ledger})
