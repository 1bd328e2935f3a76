"""An app for the routing tests: a board whose requests, sockets and methods are all used
through a node that does not run it.

``/board/<name>``: a GET answers what the board holds; any other method adds its body and
answers 201 with what it saw (method, body, a header) and a header of its own. An upgrade
accepts a socket (``?after=<seq>`` resumes it), and sends it two frames at once. A frame
``pub <text>`` is published to every socket; ``auto <request> <response>`` makes that pair
the auto-response (``auto off``: none), and is echoed; any other frame is echoed to all of
them, but the auto-response's request (``ping`` at first), which the gateway answers with
its response (``pong``).
``/call/<name>/<method>``: the router calls the board's method through its stub (RPC).
"""

from __future__ import annotations

import base64
from typing import Any

from service import (
    Application,
    DurableObject,
    Request,
    Response,
    WebSocket,
    WebSocketPair,
    WebSocketRequestResponsePair,
)


class Board(DurableObject):
    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            who = request.query.get("who", "?")
            after = request.query.get("after")
            client, server = WebSocketPair()
            self.ctx.accept_websocket(
                server, tags=[f"user:{who}"], resume_after=None if after is None else int(after)
            )
            server.serialize_attachment({"who": who})
            if after is None:
                server.send(f"hello {who}")
                server.send(f"welcome {who}")
            return Response(status=101, websocket=client)
        posts: list[str] = await self.ctx.storage.get("posts") or []
        if request.method == "GET":
            return Response.json({"posts": posts})
        body = await request.text()
        posts.append(body)
        await self.ctx.storage.put("posts", posts)
        seen = {
            "method": request.method,
            "body": body,
            "header": request.headers.get("X-Test"),
            "count": len(posts),
        }
        return Response.json(seen, status=201, headers={"X-Board": f"{len(posts)} posts"})

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        who = ws.deserialize_attachment()["who"]
        if text.startswith("pub "):
            self.ctx.publish(f"{who}:{text.removeprefix('pub ')}")
            return
        if text.startswith("auto "):
            words = text.split()
            pair = None if words[1] == "off" else WebSocketRequestResponsePair(words[1], words[2])
            self.ctx.set_websocket_auto_response(pair)
        for socket in self.ctx.get_websockets():
            socket.send(f"{who}:{text}")

    async def add(self, item: str) -> int:
        posts: list[str] = await self.ctx.storage.get("posts") or []
        posts.append(item)
        await self.ctx.storage.put("posts", posts)
        return len(posts)

    async def fail(self) -> None:
        raise ValueError("no such post")

    async def blob(self, data: bytes) -> bytes:
        return data[::-1]


async def router(request: Request, env: Any) -> Response:
    parts = request.path.strip("/").split("/")
    board = env.BOARD.get_by_name(parts[1])
    if parts[0] != "call":
        return await board.fetch(request)
    method = parts[2]
    try:
        if method == "add":
            result: Any = await board.add(request.query["item"])
        elif method == "blob":
            reversed_ = await board.blob(base64.b64decode(request.query["data"]))
            result = base64.b64encode(reversed_).decode()
        else:
            result = await getattr(board, method)()
    except Exception as error:
        return Response.json({"raised": type(error).__name__, "message": str(error)})
    return Response.json({"result": result})


app = Application({"BOARD": Board}, fetch=router)
