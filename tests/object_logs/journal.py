"""An application whose handlers log, for the object logs tests (``durable serve`` takes it).

``JOURNAL`` objects log in every handler: the constructor, ``fetch`` (``/journal/<name>``;
``?raise=1`` raises, ``?alarm_ms=N`` sets the alarm N ms ahead), ``websocket_message`` (the
frame's words ask for more: ``raise``, ``noisy N SIZE``, ``sleepy``, ``later``, ``caught``,
``debug``, ``nul``, ``thread``, ``abort``), ``websocket_close`` and ``alarm``; each message
is answered ``ack <text>`` once its turn is committed. ``QUIET`` objects record no message
(``record_messages = False``): their message turns record no event at all, and log.
"""

from __future__ import annotations

import asyncio
import logging
import time

from service import Application, DurableObject, Request, Response, WebSocket, WebSocketPair

log = logging.getLogger("journal")
# Its own level, so that its records reach the root logger's handlers in a process whose
# logging nobody configured (the tests' own); DEBUG, to show the node keeps INFO and above.
log.setLevel(logging.DEBUG)


class Journal(DurableObject):
    def __init__(self, ctx, env) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx, env)
        log.info("constructed with %d keys", len(list(ctx.storage.kv.list())))

    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            who = request.query.get("who", "?")
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server)
            server.serialize_attachment({"who": who})
            log.info("%s joined", who)
            return Response(status=101, websocket=client)
        log.info("fetch %s %s", request.method, request.path)
        if "raise" in request.query:
            raise RuntimeError("fetch failed on purpose")
        if "alarm_ms" in request.query:
            self.ctx.storage.set_alarm(time.time() * 1000 + int(request.query["alarm_ms"]))
            log.info("alarm set")
        self.ctx.storage.kv.put("fetches", (self.ctx.storage.kv.get("fetches") or 0) + 1)
        return Response("ok")

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        who = ws.deserialize_attachment()["who"]
        log.info("%s said %s", who, text)
        words = text.split()
        if words[0] == "raise":
            log.warning("about to raise")
            self.ctx.storage.kv.put("lost", True)  # undone: the handler raises
            raise ValueError("bad message")
        if words[0] == "noisy":
            count, size = int(words[1]), int(words[2])
            for n in range(count):
                log.info("%s", f"{n:04d}".ljust(size, "x"))
        elif words[0] == "sleepy":
            await asyncio.sleep(0.05)
            log.info("%s woke up", who)
        elif words[0] == "later":
            self.ctx.wait_until(self._later(who))
        elif words[0] == "caught":
            try:
                {}["missing"]
            except KeyError:
                log.exception("lookup failed")
        elif words[0] == "debug":
            log.debug("not kept: below the node's level")
            logging.getLogger("service.runtime.dispatch").warning("the node's own: not kept")
        elif words[0] == "nul":
            log.info("a\x00b")
        elif words[0] == "thread":
            await asyncio.to_thread(log.info, "from a thread of %s", who)
        elif words[0] == "abort":
            self.ctx.storage.kv.put("lost", True)  # thrown away with the instance
            log.warning("aborting")
            self.ctx.abort("aborted on purpose")
        ws.send(f"ack {text}")

    async def _later(self, who: str) -> None:
        await asyncio.sleep(0.05)
        log.info("later for %s", who)

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        log.info("%s left with %d", ws.deserialize_attachment()["who"], code)

    async def alarm(self) -> None:
        log.info("alarm fired")
        self.ctx.storage.kv.put("alarmed", True)


class Quiet(DurableObject):
    """Records no message: a message turn that writes nothing records no event."""

    record_messages = False

    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        log.info("quietly got %s", message)
        ws.send(f"ack {message}")


app = Application({"JOURNAL": Journal, "QUIET": Quiet})
