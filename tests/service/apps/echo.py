"""A small application for the process tests: a WebSocket echo that stores what it echoes."""

from __future__ import annotations

from service import Application, DurableObject, Response, WebSocketPair


class Echo(DurableObject):
    """Stores every message before echoing it, so an echo proves the message is durable."""

    async def fetch(self, request):
        if request.headers.get("Upgrade", "").lower() == "websocket":
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server)
            server.send(f"id {self.ctx.id}")
            return Response(status=101, websocket=client)
        count = (await self.ctx.storage.get("count") or 0) + 1
        await self.ctx.storage.put("count", count)
        return Response(str(count))

    async def websocket_message(self, ws, message):
        await self.ctx.storage.put(f"m:{message}", True)
        ws.send(f"echo {message}")

    async def websocket_close(self, ws, code, reason, was_clean):
        await self.ctx.storage.put("closed", code)


app = Application({"ECHO": Echo})
