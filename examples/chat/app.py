"""A chat room per name: WebSockets at /chat/<room>?username=NAME, and a page at /."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from service import (
    Application,
    DurableObject,
    DurableObjectState,
    Env,
    Request,
    Response,
    WebSocket,
    WebSocketPair,
    WebSocketRequestResponsePair,
)

#: How many messages a room keeps (and sends to whoever joins).
HISTORY_SIZE = 50
#: Longest accepted user or room name, and message, in characters.
MAX_NAME = 32
MAX_TEXT = 2000


class ChatRoom(DurableObject):
    """One room. Everything it knows lives in storage and in its sockets' attachments.

    Storage holds ``count`` (messages ever sent) and ``message:<n>`` for the last
    ``HISTORY_SIZE`` of them; each socket's attachment holds its user name. So the object
    keeps no state of its own in memory and can hibernate between any two events.
    """

    def __init__(self, ctx: DurableObjectState, env: Env) -> None:
        super().__init__(ctx, env)
        # Clients keep their connection alive with "ping" without waking the room.
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return Response("Expected WebSocket upgrade", status=426)
        username = request.query.get("username", "").strip()
        if not username:
            return Response("Missing ?username=NAME", status=400)
        if len(username) > MAX_NAME:
            return Response(f"A user name has at most {MAX_NAME} characters", status=400)
        room = _room_of(request)
        if len(room) > MAX_NAME:
            return Response(f"A room name has at most {MAX_NAME} characters", status=400)

        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, tags=[f"room:{room}", f"user:{username}"])
        server.serialize_attachment({"username": username})
        server.send(json.dumps({"type": "history", "messages": self.history()}))
        self.broadcast({"type": "join", "username": username, "online": self.online()})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = _text_of(message)
        if text is None:
            ws.send(json.dumps({"type": "error", "message": 'Send {"type": "message", "text": …}'}))
            return
        if not text.strip():
            return
        if len(text) > MAX_TEXT:
            ws.send(json.dumps({"type": "error", "message": f"At most {MAX_TEXT} characters"}))
            return
        entry = {
            "type": "message",
            "username": ws.deserialize_attachment()["username"],
            "text": text,
            "at": int(time.time() * 1000),
        }
        self.remember(entry)
        self.broadcast(entry)

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.leave(ws)

    async def websocket_error(self, ws: WebSocket, error: Exception) -> None:
        self.leave(ws)

    # -- helpers ------------------------------------------------------------------------

    def leave(self, ws: WebSocket) -> None:
        username = ws.deserialize_attachment()["username"]
        self.broadcast({"type": "leave", "username": username, "online": self.online()})

    def open_sockets(self) -> list[WebSocket]:
        # A socket stays listed while its close handler runs; it is no longer OPEN then.
        return [ws for ws in self.ctx.get_websockets() if ws.ready_state == WebSocket.OPEN]

    def online(self) -> list[str]:
        return sorted({ws.deserialize_attachment()["username"] for ws in self.open_sockets()})

    def broadcast(self, payload: dict[str, Any]) -> None:
        frame = json.dumps(payload)
        for ws in self.open_sockets():
            ws.send(frame)

    def history(self) -> list[dict[str, Any]]:
        return [entry for _, entry in self.ctx.storage.kv.list(prefix="message:")]

    def remember(self, entry: dict[str, Any]) -> None:
        kv = self.ctx.storage.kv
        count = (kv.get("count") or 0) + 1
        kv.put("count", count)
        kv.put(f"message:{count:012d}", entry)
        kv.delete(f"message:{count - HISTORY_SIZE:012d}")


def _room_of(request: Request) -> str:
    """The room is the object's name: the path segment after ``/chat/``."""
    segments = request.path.split("/")
    return unquote(segments[2]) if len(segments) > 2 else ""


def _text_of(message: str | bytes) -> str | None:
    """The text of a ``{"type": "message", "text": ...}`` frame, or None if it is not one."""
    if not isinstance(message, str):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "message":
        return None
    text = data.get("text")
    return text if isinstance(text, str) else None


app = Application(bindings={"CHAT": ChatRoom}, static_dir=Path(__file__).parent / "static")
