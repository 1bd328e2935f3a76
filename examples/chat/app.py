"""A chat room per name: WebSockets at /chat/<room>?username=NAME, and a page at /.

Every line of the room (a message, a join, a leave) is published (``ctx.publish``): it is
recorded once in the room's log, and its frame tells the client its seq. A client that
reconnects with ``&after=<the last seq it saw>`` gets the lines it missed, from the log,
then the live ones: none lost, none twice.

The room logs (``logging``) who joins and leaves and each message, and a warning for a
frame it refuses: the node keeps those lines with the turn that logged them (``durable
logs CHAT/lobby``, and the admin dashboard's timeline).
"""

from __future__ import annotations

import json
import logging
import time
import unicodedata
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

log = logging.getLogger("chat")


class ChatRoom(DurableObject):
    """One room. Everything it knows lives in storage, its log and its sockets' attachments.

    Storage holds ``count`` (messages ever sent) and ``message:<n>`` for the last
    ``HISTORY_SIZE`` of them, which a newcomer is sent; each socket's attachment holds its
    user name. The lines themselves are published messages of the log, which a returning
    client resumes from. So the object keeps no state of its own in memory and can
    hibernate between any two events.
    """

    def __init__(self, ctx: DurableObjectState, env: Env) -> None:
        super().__init__(ctx, env)
        # Clients keep their connection alive with "ping" without waking the room.
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: Request) -> Response:
        # The names are checked before the upgrade, so a plain GET of a WebSocket URL that
        # was refused tells a browser (which cannot see a refused handshake) what was wrong.
        username = request.query.get("username", "").strip()
        room = _room_of(request)
        if not username:
            return Response("Missing ?username=NAME", status=400)
        problem = _name_problem("user name", username) or _name_problem("room name", room)
        if problem is not None:
            return Response(problem, status=400)
        after = request.query.get("after")
        if after is not None and not (after.isascii() and after.isdigit()):
            return Response("?after= takes the seq of the last line seen (a number)", status=400)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return Response("Expected WebSocket upgrade", status=426)

        client, server = WebSocketPair()
        # A returning client first gets every line published since ``after``, from the log.
        resume_after = int(after) if after is not None else None
        tags = [f"room:{room}", f"user:{username}"]
        self.ctx.accept_websocket(server, tags=tags, resume_after=resume_after)
        server.serialize_attachment({"username": username})
        if resume_after is None:  # a newcomer: the last messages, from storage
            server.send(json.dumps({"type": "history", "messages": self.history()}))
        online = self.online()
        log.info("%s joined, %d online", username, len(online))
        self.ctx.publish({"type": "join", "username": username, "online": online})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = _text_of(message)
        username = ws.deserialize_attachment()["username"]
        if text is None:
            log.warning("refused a frame from %s: not a chat message", username)
            ws.send(json.dumps({"type": "error", "message": 'Send {"type": "message", "text": …}'}))
            return
        if not text.strip():
            return
        if len(text) > MAX_TEXT:
            log.warning("refused %d characters from %s (at most %d)", len(text), username, MAX_TEXT)
            ws.send(json.dumps({"type": "error", "message": f"At most {MAX_TEXT} characters"}))
            return
        entry = {
            "type": "message",
            "id": self.next_id(),
            "username": username,
            "text": text,
            "at": int(time.time() * 1000),
        }
        self.remember(entry)
        log.info("message %d from %s, %d characters", entry["id"], username, len(text))
        self.ctx.publish(entry)

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.leave(ws)

    async def websocket_error(self, ws: WebSocket, error: Exception) -> None:
        self.leave(ws)

    # -- helpers ------------------------------------------------------------------------

    def leave(self, ws: WebSocket) -> None:
        username = ws.deserialize_attachment()["username"]
        online = self.online()
        log.info("%s left, %d online", username, len(online))
        self.ctx.publish({"type": "leave", "username": username, "online": online})

    def online(self) -> list[str]:
        # A socket stays listed while its close handler runs; it is no longer OPEN then.
        open_sockets = [ws for ws in self.ctx.get_websockets() if ws.ready_state == WebSocket.OPEN]
        return sorted({ws.deserialize_attachment()["username"] for ws in open_sockets})

    def history(self) -> list[dict[str, Any]]:
        return [entry for _, entry in self.ctx.storage.kv.list(prefix="message:")]

    def next_id(self) -> int:
        """The number of the next message: 1, 2, ... (a page uses it to skip those it has)."""
        count: int = self.ctx.storage.kv.get("count") or 0
        return count + 1

    def remember(self, entry: dict[str, Any]) -> None:
        kv = self.ctx.storage.kv
        count = entry["id"]
        kv.put("count", count)
        kv.put(f"message:{count:012d}", entry)
        kv.delete(f"message:{count - HISTORY_SIZE:012d}")


def _room_of(request: Request) -> str:
    """The room is the object's name: the path segment after ``/chat/``."""
    segments = request.path.split("/")
    return unquote(segments[2]) if len(segments) > 2 else ""


def _name_problem(what: str, name: str) -> str | None:
    """Why ``name`` cannot be a user or room name, or None when it can be one.

    A name becomes a tag, which PostgreSQL must hold as text: NUL and lone surrogates cannot
    be. Other control characters (a line break, a tab) could, but only garble every page
    that shows the name, so they are refused too.
    """
    if len(name) > MAX_NAME:
        return f"A {what} has at most {MAX_NAME} characters"
    categories = {unicodedata.category(char) for char in name}
    if "Cc" in categories:
        return f"A {what} cannot contain control characters (such as NUL or a line break)"
    if "Cs" in categories:
        return f"A {what} must be valid Unicode text (it has a lone surrogate)"
    return None


def _text_of(message: str | bytes) -> str | None:
    """The text of a ``{"type": "message", "text": ...}`` frame, or None if it is not one.

    ``content`` is taken in place of ``text``, so clients written for the other common
    shape of a chat frame work unchanged.
    """
    if not isinstance(message, str):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "message":
        return None
    text = data.get("text", data.get("content"))
    return text if isinstance(text, str) else None


app = Application(bindings={"CHAT": ChatRoom}, static_dir=Path(__file__).parent / "static")
