"""A chat room whose every frame says which version of the code sent it, for the rolling
restart tests: ``ROOM_VERSION`` in the environment (default ``v1``) is that version.

Each message is counted in storage and sent to every socket of the room as
``<version> <count> <who>:<text>``: the count goes on across moves only if the room was
rebuilt from its log. ``GET /room/<name>`` answers the version and the count. A message
``slow`` takes ``ROOM_SLOW`` seconds (from the environment; none if unset) to handle.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qs, urlsplit

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair


class Room(DurableObject):
    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            who = parse_qs(urlsplit(request.url).query).get("who", ["?"])[0]
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server, tags=[f"user:{who}"])
            server.serialize_attachment({"who": who})
            server.send(f"hello {who}")
            return Response(status=101, websocket=client)
        count = await self.ctx.storage.get("count") or 0
        return Response(f"{self.env.VERSION} {count}")

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        who = ws.deserialize_attachment()["who"]
        if text == "slow":
            await asyncio.sleep(float(os.environ.get("ROOM_SLOW", "0")))
        count = (await self.ctx.storage.get("count") or 0) + 1
        await self.ctx.storage.put("count", count)
        for socket in self.ctx.get_websockets():
            socket.send(f"{self.env.VERSION} {count} {who}:{text}")


app = Application({"ROOM": Room}, vars={"VERSION": os.environ.get("ROOM_VERSION", "v1")})
