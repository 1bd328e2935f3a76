"""A chat room that keeps the last message in storage: every message is two events in its
object's log (the frame's record and the storage write), as in a room that stores what is
said. The history benchmark's follow part runs it, so that a node that takes N messages a
second commits 2N events a second."""

from __future__ import annotations

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair


class KeptChatRoom(DurableObject):
    """One room: accept hibernatable sockets, keep the last message, broadcast it."""

    async def fetch(self, request: Request) -> Response:
        """Accept a WebSocket into the room."""
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        """Keep the message, then send it to every socket in the room, the sender included."""
        self.ctx.storage.kv.put("last", message)
        for peer in self.ctx.get_websockets():
            peer.send(message)


app = Application({"CHAT": KeptChatRoom})
