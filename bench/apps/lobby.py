"""A lobby for the dashboard benchmark: who is here, and nothing else.

Each socket is accepted with the tags ``room:<name>`` and ``user:<username>`` and given
``{"username": ...}`` as its attachment, as the chat example does, but nothing is broadcast:
a join costs its accept and attachment, a leave its close, so the benchmark measures the
dashboard following the joins and leaves, not the fan-out of a chat room.
"""

from __future__ import annotations

from service import Application, DurableObject, Request, Response, WebSocketPair


class Lobby(DurableObject):
    """Accept hibernatable sockets, tagged with who they are."""

    async def fetch(self, request: Request) -> Response:
        """``/lobby/<name>?username=NAME``: join."""
        username = request.query.get("username", "")
        if not username:
            return Response("Missing ?username=NAME", status=400)
        client, server = WebSocketPair()
        room = request.path.rstrip("/").rsplit("/", 1)[-1]
        self.ctx.accept_websocket(server, tags=[f"room:{room}", f"user:{username}"])
        server.serialize_attachment({"username": username})
        return Response(status=101, websocket=client)


app = Application({"LOBBY": Lobby})
