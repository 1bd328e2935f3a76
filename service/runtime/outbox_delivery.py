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

Three kinds of rows are not frames. An auto-response row gives the object's new
auto-response pair to this node, which answers its sockets' auto-responses itself. A reply
answers a request or call this node routed to the
object's owner (``service.runtime.replies``): it is handed to the node as it is read, so a
socket the reply opens is known to the gateway before the rows that follow it, its frames,
are delivered. A resume asks for the messages a socket accepted elsewhere missed: they are
read from the log (committed by then: the resume was written by the commit of the accept)
and sent first, while the socket's later rows wait behind the read, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from service.api import published
from service.backoff import Backoff
from service.ports.auto_responses import AutoResponses
from service.ports.event_log import PublishedLog
from service.ports.records import RemoteOutput
from service.ports.socket_output import SocketOutput
from service.runtime import missed_messages
from service.tasks import BackgroundTasks

log = logging.getLogger(__name__)

#: Rows read per query.
PAGE = 1000

#: Seconds without a read after which the rows delivered by the last one are deleted. A read
#: deletes what the reads before it delivered, in the same statement; when no read follows
#: soon (the traffic stopped), one more deletes the rest.
CLEAN_AFTER = 1.0


class OutboxLog(PublishedLog, Protocol):
    """This node's outbox in the event log (``ports.event_log.EventLog``), and the published
    messages a resume reads there."""

    async def outbox_after(
        self, position: int, limit: int, *, delivered: int = 0
    ) -> list[RemoteOutput]: ...

    async def outbox_delivered(self, position: int) -> None: ...


class OutboxDelivery:
    """Reads this node's outbox from the last position delivered; one read at a time."""

    def __init__(
        self,
        outbox: OutboxLog,
        output: SocketOutput,
        *,
        auto_responses: AutoResponses | None = None,
        on_reply: Callable[[RemoteOutput], None] | None = None,
        page: int = PAGE,
    ) -> None:
        self._outbox = outbox
        self._output = output
        self._auto_responses = auto_responses
        self._on_reply = on_reply
        self._page = page
        #: Sockets whose missed messages are being read, with their rows read meanwhile.
        self._resuming: dict[str, list[RemoteOutput]] = {}
        self._reads = BackgroundTasks(log)
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
        if self.delivered > self._deleted:
            # What the last reads delivered, which no later read will delete now.
            try:
                await self._outbox.outbox_delivered(self.delivered)
                self._deleted = self.delivered
            except Exception as error:
                log.warning(
                    "could not delete this node's delivered outbox rows: %s (the next node "
                    "of this id, or the sweep of this one, deletes them)",
                    error,
                    extra={"action": "outbox"},
                )

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
            if self.delivered > self._deleted:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), CLEAN_AFTER)
            else:
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
        """Deliver every row after the last one delivered, deleting those delivered before.

        A read that fails deletes nothing, and the rows stay until a later one deletes them:
        never delivered twice, since reads start after the last position delivered.
        """
        while True:
            deleting = self.delivered
            rows = await self._outbox.outbox_after(
                self.delivered, self._page, delivered=deleting if deleting > self._deleted else 0
            )
            self._deleted = max(self._deleted, deleting)
            for row in rows:
                self._deliver(row)
                self.delivered = row.position
            if len(rows) < self._page:
                break

    def _deliver(self, row: RemoteOutput) -> None:
        output = self._output
        if self._resuming and row.socket_id in self._resuming:
            self._resuming[row.socket_id].append(row)  # behind the socket's missed messages
        elif row.kind == "text":
            output.send(row.socket_id, row.text or "")
        elif row.kind == "binary":
            output.send(row.socket_id, row.data or b"")
        elif row.kind == "close":
            output.close(row.socket_id, row.code, row.reason or "")
        elif row.kind == "reply":
            if self._on_reply is not None:
                self._on_reply(row)
        elif row.kind == "resume" and row.reply is not None:
            self._resume(row.socket_id, row.reply)
        elif row.kind == "auto_response" and row.reply is not None:
            if self._auto_responses is not None:
                pair = row.reply.get("pair")
                self._auto_responses.set_auto_response(
                    str(row.reply["object_id"]), None if pair is None else (pair[0], pair[1])
                )
        else:
            log.warning("ignoring an outbox row of kind %r", row.kind, extra={"action": "outbox"})

    def _resume(self, socket_id: str, span: dict[str, Any]) -> None:
        after, last_seq = int(span["after"]), int(span["last_seq"])
        if after > last_seq:
            reason = published.ahead_reason(after, last_seq)
            self._output.close(socket_id, published.RESUME_AHEAD_CODE, reason)
        elif after < last_seq:
            self._resuming[socket_id] = []
            self._reads.spawn(self._replay(socket_id, span))

    async def _replay(self, socket_id: str, span: dict[str, Any]) -> None:
        """Send a socket the messages it missed, then the rows read for it meanwhile."""
        output = self._output
        try:
            missed = await missed_messages.frames(
                self._outbox,
                str(span["object_id"]),
                int(span["after"]),
                int(span["last_seq"]),
                [str(tag) for tag in span["tags"]],
                int(span["limit"]),
            )
        except Exception as error:
            log.warning(
                "could not read the missed messages of a resuming socket: %s",
                error,
                extra={"object_id": span.get("object_id"), "action": "resume"},
            )
            output.close(socket_id, published.RESUME_FAILED_CODE, published.RESUME_FAILED_REASON)
        else:
            for frame in missed:
                output.send(socket_id, frame)
        for row in self._resuming.pop(socket_id, []):
            self._deliver(row)
