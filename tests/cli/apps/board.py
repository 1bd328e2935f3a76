"""A note board for the rerun tests: every kind of inbound work, each leaving its mark.

Sockets at /board/<name>?user=NAME post notes (frames), "remind" sets an alarm whose run
counts the notes, "bye" makes the object close the socket; an HTTP POST adds a note, a GET
reads the count. Notes carry the time they were taken, as real apps' records do.
"""

from __future__ import annotations

import json
import time
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

#: Milliseconds from "remind" to the alarm's run.
REMIND_AFTER_MS = 200


class Board(DurableObject):
    """Storage holds ``count`` and ``note:<n>``; each socket's attachment its user."""

    def __init__(self, ctx: DurableObjectState, env: Env) -> None:
        super().__init__(ctx, env)
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: Request) -> Response:
        user = request.query.get("user", "anon")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server, tags=[f"user:{user}"])
            server.serialize_attachment({"user": user})
            server.send(json.dumps({"notes": self.count()}))
            return Response(status=101, websocket=client)
        if request.method == "POST":
            self.add(await request.text(), by=f"http:{user}")
        return Response.json({"notes": self.count()})

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        if text == "remind":
            self.ctx.storage.kv.put("reminder", {"asked_by": self.user_of(ws)})
            await self.ctx.storage.set_alarm(time.time() * 1000 + REMIND_AFTER_MS)
            ws.send("reminder set")
        elif text == "bye":
            ws.close(4000, "bye")
        else:
            note = self.add(text, by=self.user_of(ws))
            self.broadcast({"note": note})

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.ctx.storage.kv.put(f"left:{self.user_of(ws)}", code)

    async def alarm(self, alarm_info: Any = None) -> None:
        self.ctx.storage.kv.put("reminded", self.count())
        self.broadcast({"reminder": self.count()})

    # -- helpers ------------------------------------------------------------------------

    def user_of(self, ws: WebSocket) -> str:
        user: str = ws.deserialize_attachment()["user"]
        return user

    def count(self) -> int:
        count: int = self.ctx.storage.kv.get("count") or 0
        return count

    def add(self, text: str, by: str) -> dict[str, Any]:
        number = self.count() + 1
        note = {"text": self.normalise(text), "by": by, "at": int(time.time() * 1000)}
        self.ctx.storage.kv.put("count", number)
        self.ctx.storage.kv.put(f"note:{number:06d}", note)
        return note

    def normalise(self, text: str) -> str:
        return text.strip()

    def broadcast(self, payload: dict[str, Any]) -> None:
        frame = json.dumps(payload)
        for ws in self.ctx.get_websockets():
            if ws.ready_state == WebSocket.OPEN:
                ws.send(frame)


app = Application({"BOARD": Board})
