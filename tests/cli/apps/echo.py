"""A small application for the process tests: a WebSocket echo that stores what it echoes."""

from __future__ import annotations

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair


class Echo(DurableObject):
    """Stores every message before echoing it, so an echo proves the message is durable."""

    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server)
            server.send(f"id {self.ctx.id}")
            return Response(status=101, websocket=client)
        count = (await self.ctx.storage.get("count") or 0) + 1
        await self.ctx.storage.put("count", count)
        return Response(str(count))

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        await self.ctx.storage.put(f"m:{text}", True)
        ws.send(f"echo {text}")

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        await self.ctx.storage.put("closed", code)


app = Application({"ECHO": Echo})
