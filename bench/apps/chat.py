"""A chat room for the round-trip benchmark: every message goes to every socket in the room.

It stores nothing itself; each inbound message is still recorded in the object's log (the
default), so a broadcast leaves only after that record is durable.
"""

from __future__ import annotations

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair


class ChatRoom(DurableObject):
    """One room: accept hibernatable sockets, broadcast what any of them sends."""

    async def fetch(self, request: Request) -> Response:
        """Accept a WebSocket into the room."""
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        """Send the message to every socket in the room, the sender included."""
        for peer in self.ctx.get_websockets():
            peer.send(message)


app = Application({"CHAT": ChatRoom})
