"""A room for the cluster tests: every message counted and kept, acknowledged to its sender.

``GET /room/<name>`` answers the room's whole storage as JSON (what the log rebuilt);
a message ``alarm <seconds>`` sets the room's alarm, which writes ``alarm`` when it fires.
Each message is logged (``<who> said <text>``): the room's lines are in ``object_logs``.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair

log = logging.getLogger("room")


class Room(DurableObject):
    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            who = parse_qs(urlsplit(request.url).query).get("who", ["?"])[0]
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server, tags=[f"user:{who}"])
            server.serialize_attachment({"who": who})
            server.send(f"hello {who}")
            return Response(status=101, websocket=client)
        return Response.from_json(await self.ctx.storage.list())

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        who = ws.deserialize_attachment()["who"]
        log.info("%s said %s", who, text)
        count = (await self.ctx.storage.get("count") or 0) + 1
        await self.ctx.storage.put({"count": count, f"m{count:05d}": f"{who}:{text}"})
        if text.startswith("alarm "):
            seconds = float(text.removeprefix("alarm "))
            await self.ctx.storage.set_alarm(time.time() * 1000 + seconds * 1000)
        ws.send(f"ack {text}")

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        who = ws.deserialize_attachment()["who"]
        await self.ctx.storage.put(f"closed:{who}", [code, was_clean])

    async def alarm(self) -> None:
        await self.ctx.storage.put("alarm", "fired")


app = Application({"ROOM": Room})
