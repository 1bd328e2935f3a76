"""Who is here, and their status: WebSockets at /presence/<room>?userId=ID, a page at /."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

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

#: Longest accepted user id and status, in characters.
MAX_ID = 32
MAX_STATUS = 64
#: The status of someone who just arrived.
INITIAL_STATUS = "online"


class PresenceRoom(DurableObject):
    """One room's presence list, kept only in the attachments of its sockets.

    Each socket's attachment is ``{"userId": ..., "status": ...}`` (tagged ``user:<id>``;
    one person may have several tabs open, all with the same status). The list is rebuilt
    from ``ctx.get_websockets()`` whenever it is needed, so nothing is lost when the room
    hibernates. (The same list is in the ``presence`` view for anyone asking with SQL.)
    """

    def __init__(self, ctx: DurableObjectState, env: Env) -> None:
        super().__init__(ctx, env)
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: Request) -> Response:
        # The id is checked before the upgrade, so a plain GET of a WebSocket URL that was
        # refused tells a browser (which cannot see a refused handshake) what was wrong.
        user_id = request.query.get("userId", "").strip()
        if not user_id:
            return Response("Missing ?userId=ID", status=400)
        problem = _name_problem("user id", user_id)
        if problem is not None:
            return Response(problem, status=400)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return Response("Expected WebSocket upgrade", status=426)

        # Someone already here in another tab keeps their status and is not announced again.
        tabs = self.open_sockets(user_id)
        status = tabs[0].deserialize_attachment()["status"] if tabs else INITIAL_STATUS
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, tags=[f"user:{user_id}"])
        server.serialize_attachment({"userId": user_id, "status": status})
        server.send(json.dumps({"type": "presence", "users": self.users()}))
        if not tabs:
            self.broadcast({"type": "join", "userId": user_id, "status": status})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        status = _status_of(message)
        if status is None:
            error = f'Send {{"type": "status", "status": …}} with 1 to {MAX_STATUS} characters'
            ws.send(json.dumps({"type": "error", "message": error}))
            return
        user_id = ws.deserialize_attachment()["userId"]
        for tab in self.open_sockets(user_id):
            tab.serialize_attachment({"userId": user_id, "status": status})
        self.broadcast({"type": "status", "userId": user_id, "status": status})

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.leave(ws)

    async def websocket_error(self, ws: WebSocket, error: Exception) -> None:
        self.leave(ws)

    # -- helpers ------------------------------------------------------------------------

    def leave(self, ws: WebSocket) -> None:
        user_id = ws.deserialize_attachment()["userId"]
        if not self.open_sockets(user_id):  # their last tab
            self.broadcast({"type": "leave", "userId": user_id})

    def open_sockets(self, user_id: str | None = None) -> list[WebSocket]:
        """Open sockets, all or those of one user (found by tag), oldest first."""
        tag = None if user_id is None else f"user:{user_id}"
        # A socket stays listed while its close handler runs; it is no longer OPEN then.
        return [ws for ws in self.ctx.get_websockets(tag) if ws.ready_state == WebSocket.OPEN]

    def users(self) -> list[dict[str, Any]]:
        """One ``{"userId": ..., "status": ...}`` per user, in order of arrival."""
        users: dict[str, dict[str, Any]] = {}
        for ws in self.open_sockets():
            entry = ws.deserialize_attachment()
            users.setdefault(entry["userId"], entry)
        return list(users.values())

    def broadcast(self, event: dict[str, Any]) -> None:
        """Send ``event`` with the whole list, so a client can simply redraw it."""
        frame = json.dumps({**event, "users": self.users()})
        for ws in self.open_sockets():
            ws.send(frame)


def _name_problem(what: str, name: str) -> str | None:
    """Why ``name`` cannot be a user id, or None when it can be one.

    It becomes a tag, which PostgreSQL must hold as text: NUL and lone surrogates cannot be.
    Other control characters (a line break, a tab) could, but only garble every page that
    shows the name, so they are refused too.
    """
    if len(name) > MAX_ID:
        return f"A {what} has at most {MAX_ID} characters"
    categories = {unicodedata.category(char) for char in name}
    if "Cc" in categories:
        return f"A {what} cannot contain control characters (such as NUL or a line break)"
    if "Cs" in categories:
        return f"A {what} must be valid Unicode text (it has a lone surrogate)"
    return None


def _status_of(message: str | bytes) -> str | None:
    """The status of a ``{"type": "status", "status": ...}`` frame, or None if invalid."""
    if not isinstance(message, str):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "status":
        return None
    status = data.get("status")
    if not isinstance(status, str) or not 0 < len(status.strip()) <= MAX_STATUS:
        return None
    return status.strip()


app = Application(bindings={"PRESENCE": PresenceRoom}, static_dir=Path(__file__).parent / "static")
