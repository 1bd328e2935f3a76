"""This node's outbox: what objects running on other nodes sent to the sockets it holds.

The owner's flush writes each frame or close to the outbox in the same transaction as the
events that caused it, addressed to this node, and its NOTIFY names the newest position it
wrote here. A notification is only a hint (it is lost while the listener is away, and may
come before or after others): the rows are the truth. So on every notification newer than
what was delivered, after every reconnect of the listener and on every poll, one reader
reads the rows after the last position it delivered, in position order, which is commit
order (positions are taken under the flushes' lock), hands them to the sockets in that
order, and deletes them. Per-socket order therefore holds end to end: the owner wrote a
socket's output in turn order, and it is delivered in that order. A row for a socket this
node no longer holds is dropped by the gateway (``SocketOutput`` ignores unknown sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from service.backoff import Backoff
from service.ports.records import RemoteOutput
from service.ports.socket_output import SocketOutput

log = logging.getLogger(__name__)

#: Rows read per query.
PAGE = 1000


class OutboxLog(Protocol):
    """This node's outbox in the event log (``ports.event_log.EventLog``)."""

    async def outbox_after(self, position: int, limit: int) -> list[RemoteOutput]: ...

    async def outbox_delivered(self, position: int) -> None: ...


class OutboxDelivery:
    """Reads this node's outbox from the last position delivered; one read at a time."""

    def __init__(self, outbox: OutboxLog, output: SocketOutput, *, page: int = PAGE) -> None:
        self._outbox = outbox
        self._output = output
        self._page = page
        #: Position of the last row delivered, and of the last row deleted.
        self.delivered = 0
        self._deleted = 0
        #: Reads asked for, and the newest of them that a finished read began after.
        self._asked = 0
        self._answered = 0
        self._wanted = asyncio.Event()
        self._finished = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-delivery")
        self.read_soon()  # rows left for this node id (a previous run's sockets): dropped

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._answer(self._asked)  # nobody waits for a read that will not come

    def notified(self, position: int) -> None:
        """A flush wrote rows for this node up to ``position``."""
        if position > self.delivered:
            self.read_soon()

    def read_soon(self) -> int:
        """Ask for a read that begins after now; returns the request's number."""
        self._asked += 1
        self._wanted.set()
        return self._asked

    async def caught_up(self) -> None:
        """Return once a read that began after this call has ended, whatever its outcome:
        the rows committed before the call have then been delivered (unless the database
        was away)."""
        if self._task is None or self._task.done():
            return  # not started, or stopped: no read will come
        asked = self.read_soon()
        async with self._finished:
            await self._finished.wait_for(lambda: self._answered >= asked)

    async def _run(self) -> None:
        backoff = Backoff(0.1, 2.0)
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            asked = self._asked
            try:
                await self._read()
                backoff.reset()
            except Exception as error:
                log.warning(
                    "could not read this node's outbox, retrying: %s",
                    error,
                    extra={"action": "outbox"},
                )
                self._wanted.set()
                await self._answer(asked)
                await asyncio.sleep(backoff.next())
            else:
                await self._answer(asked)

    async def _answer(self, asked: int) -> None:
        async with self._finished:
            self._answered = asked
            self._finished.notify_all()

    async def _read(self) -> None:
        """Deliver every row after the last one delivered, then delete what was delivered."""
        while True:
            rows = await self._outbox.outbox_after(self.delivered, self._page)
            for row in rows:
                self._deliver(row)
                self.delivered = row.position
            if len(rows) < self._page:
                break
        if self.delivered > self._deleted:
            # If this fails, the rows stay until a later read deletes them: never delivered
            # twice, since reads start after the last position delivered.
            await self._outbox.outbox_delivered(self.delivered)
            self._deleted = self.delivered

    def _deliver(self, row: RemoteOutput) -> None:
        output = self._output
        if row.kind == "text":
            output.send(row.socket_id, row.text or "")
        elif row.kind == "binary":
            output.send(row.socket_id, row.data or b"")
        elif row.kind == "close":
            output.close(row.socket_id, row.code, row.reason or "")
        else:
            log.warning("ignoring an outbox row of kind %r", row.kind, extra={"action": "outbox"})
