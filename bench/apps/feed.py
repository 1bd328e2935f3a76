"""A room for the recovery benchmark: every text it receives is published to every socket.

``/feed/<room>?after=<seq>`` resumes after that seq: the socket first gets the messages it
missed, from the log, then the live ones.
"""

from __future__ import annotations

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair


class Feed(DurableObject):
    """One room: publishes (``ctx.publish``) what any socket sends, the sender included."""

    async def fetch(self, request: Request) -> Response:
        """Accept a WebSocket into the room, resuming after ``?after=`` if given."""
        after = request.query.get("after")
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, resume_after=int(after) if after else None)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        """Publish the message: one event in the log, one frame to every socket."""
        self.ctx.publish(message if isinstance(message, str) else message.decode())


app = Application({"FEED": Feed})
