"""The application of the resume tests: a feed that publishes what it is asked to.

``/feed/<name>?tags=a,b&after=17`` opens a socket with those tags (``after``: resume
after that seq). A text frame ``{"publish": data, "tag": t, "count": n}`` publishes ``data``
(``n`` times, numbered ``data-1`` ... when ``n`` is given) and answers nothing; a binary
frame is published as it is. A POST publishes its JSON body's ``data`` (with its ``tag``)
and answers ``{"seq": n}``.
"""

from __future__ import annotations

import json
from typing import Any

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair


class Feed(DurableObject):
    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            after = request.query.get("after")
            tags = [tag for tag in request.query.get("tags", "").split(",") if tag]
            client, server = WebSocketPair()
            self.ctx.accept_websocket(
                server, tags=tags, resume_after=int(after) if after is not None else None
            )
            return Response(status=101, websocket=client)
        body = await request.json()
        seq = self.ctx.publish(body["data"], tag=body.get("tag"))
        return Response.json({"seq": seq})

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.ctx.publish(message)
            return
        command: dict[str, Any] = json.loads(message)
        count = command.get("count")
        if count is None:
            self.ctx.publish(command["publish"], tag=command.get("tag"))
            return
        for number in range(1, count + 1):
            self.ctx.publish(f"{command['publish']}-{number}", tag=command.get("tag"))


app = Application({"FEED": Feed})
