"""The objects and the application the RPC tests call: a room with sockets and methods, a
lobby that calls rooms, and a router that calls them over HTTP."""

from __future__ import annotations

from typing import Any

from service import Application, DurableObject, Request, Response, WebSocketPair


class RoomFull(Exception):
    """A class of the application's own: it comes back to callers as a RemoteError."""


class Room(DurableObject):
    """Keeps an ordered list of what reached it: frames (``m:``) and calls (``c:``)."""

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, tags=[f"user:{request.query.get('user', 'x')}"])
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: Any, message: str | bytes) -> None:
        ws.send(f"{self._append(f'm:{message}')}")

    def _append(self, item: str) -> int:
        kv = self.ctx.storage.kv
        items = kv.get("items") or []
        items.append(item)
        kv.put("items", items)
        return len(items)

    async def add(self, item: str) -> int:
        return self._append(f"c:{item}")

    def items(self) -> list[str]:
        return self.ctx.storage.kv.get("items") or []

    def members(self) -> int:
        return len(self.ctx.get_websockets())

    async def echo(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    async def fail(self, kind: str) -> None:
        self.ctx.storage.kv.put("written before failing", True)
        if kind == "value":
            raise ValueError("bad value")
        if kind == "key":
            raise KeyError("seat")
        raise RoomFull("no seat left")

    async def crash(self) -> None:
        self.ctx.storage.kv.put("written before crashing", True)
        self.ctx.abort("crashed on purpose")

    def unsendable(self) -> set[int]:
        self.ctx.storage.kv.put("written before refusing", True)
        return {1, 2}

    async def call_self(self) -> list[str]:
        return await self.env.ROOM.get(self.ctx.id).items()

    async def call_lobby(self) -> Any:
        return await self.env.LOBBY.get_by_name("main").room_items(self.ctx.id.name)


class Lobby(DurableObject):
    """Calls rooms: from its fetch, and from methods (a cycle back to the calling room)."""

    async def fetch(self, request: Request) -> Response:
        room = self.env.ROOM.get_by_name(request.query["room"])
        count = await room.add(f"lobby:{request.query['item']}")
        return Response.json({"count": count, "items": await room.items()})

    async def room_items(self, name: str) -> list[str]:
        return await self.env.ROOM.get_by_name(name).items()

    async def enter(self, name: str) -> Any:
        return await self.env.ROOM.get_by_name(name).call_lobby()


async def router(request: Request, env: Any) -> Response:
    """``/members/<room>`` and ``/add/<room>?item=``: calls from outside any object;
    ``/lobby?room=&item=`` goes to the lobby's fetch; ``/room/<room>`` to a room's."""
    parts = request.path.strip("/").split("/")
    if parts[0] == "lobby":
        return await env.LOBBY.get_by_name("main").fetch(request)
    room = env.ROOM.get_by_name(parts[1])
    if parts[0] == "members":
        return Response.json({"members": await room.members()})
    if parts[0] == "add":
        return Response.json({"count": await room.add(request.query["item"])})
    if parts[0] == "fail":
        try:
            await room.fail(request.query["kind"])
        except Exception as error:
            return Response.json({"type": type(error).__name__, "text": str(error)}, status=500)
    return await room.fetch(request)


def application() -> Application:
    return Application({"ROOM": Room, "LOBBY": Lobby}, fetch=router)
