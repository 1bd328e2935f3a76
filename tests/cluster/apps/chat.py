"""A chat room for the cluster tests: every message goes to every socket of the room.

A message ``kick <who> <code>`` closes that client's socket with that code instead, and
``bytes <text>`` is sent to everyone as a binary frame.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair


class Chat(DurableObject):
    async def fetch(self, request: Request) -> Response:
        who = parse_qs(urlsplit(request.url).query).get("who", ["?"])[0]
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, tags=[f"user:{who}"])
        server.serialize_attachment({"who": who})
        server.send(f"hello {who}")
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        who = ws.deserialize_attachment()["who"]
        if text.startswith("kick "):
            _, target, code = text.split()
            for socket in self.ctx.get_websockets(f"user:{target}"):
                socket.close(int(code), f"kicked by {who}")
            return
        if text.startswith("bytes "):
            for socket in self.ctx.get_websockets():
                socket.send(f"{who}:{text.removeprefix('bytes ')}".encode())
            return
        for socket in self.ctx.get_websockets():
            socket.send(f"{who}:{text}")


app = Application({"CHAT": Chat})
