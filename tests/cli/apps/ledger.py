"""An application for the process tests of bookmarks and forks: storage by HTTP.

``/ledger/NAME?put=KEY&value=V`` stores a value, ``?restore=BOOKMARK`` asks for a restore
(``&abort=1`` then aborts), and every request answers the storage and the current bookmark.
Its namespace has a unique key of its own, as an application may.
"""

from __future__ import annotations

from service import Application, DurableObject, Request, Response


class Ledger(DurableObject):
    async def fetch(self, request: Request) -> Response:
        storage = self.ctx.storage
        if "restore" in request.query:
            undo = await storage.on_next_session_restore_bookmark(request.query["restore"])
            if "abort" in request.query:
                self.ctx.abort()
            return Response(undo)
        if "put" in request.query:
            await storage.put(request.query["put"], request.query["value"])
        if "alarm" in request.query:
            await storage.set_alarm(int(request.query["alarm"]))
        return Response.json(
            {
                "storage": await storage.list(),
                "alarm": await storage.get_alarm(),
                "bookmark": await storage.get_current_bookmark(),
                "name": self.ctx.id.name,
            }
        )

    async def alarm(self) -> None:
        await self.ctx.storage.put("alarm ran", True)


app = Application({"LEDGER": Ledger}, unique_keys={"LEDGER": "ledger-namespace"})
