"""Work this node hands to the inbox: for objects another live node runs (routed there), and
for whichever node runs an object next (at shutdown, or for a previous run's sockets).

Writes go to the group commit in the order they are made, and it keeps that order, so a
socket's frames reach the inbox, and so their object, in the order the socket sent them.
The flush that commits a row wakes the object's live owner (or this node, when nobody live
owns it). Requests, upgrades and RPC calls travel this way too, with the node to reply to
(``replies``). The other direction, the frames an object sends to sockets another node holds
and the replies, goes through the outbox (``outbox_delivery``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from service.ports.event_log import EventLog
from service.ports.socket_output import SocketOutput
from service.runtime.delivery import Delivery

log = logging.getLogger(__name__)

#: The close a node sends a client whose frame it could not hand over (the client retries).
NOT_RECORDED = (1011, "the server could not record a message of this connection; reconnect")


class InboxWrites:
    """This node's inbox writes in flight, and the objects it routes to other nodes."""

    def __init__(
        self,
        event_log: EventLog,
        output: SocketOutput,
        log_extra: Callable[[str], dict[str, str]],
    ) -> None:
        self._event_log = event_log
        self._output = output
        self._log_extra = log_extra
        #: Per object, the latest inbox write not yet committed.
        self._pending: dict[str, asyncio.Future[int]] = {}
        #: Objects another live node owns, by owner as last seen: their socket work goes to
        #: the inbox until this node is woken for them (they moved, or were freed).
        self._elsewhere: dict[str, str] = {}

    # -- routing ------------------------------------------------------------------------

    def routed(self, object_id: str) -> bool:
        """Whether the object's work goes to another node."""
        return object_id in self._elsewhere

    def route(self, object_id: str, owner: str) -> None:
        """Another live node owns the object: its work goes there from now on."""
        if object_id not in self._elsewhere:
            log.info(
                "owned by node %s: routing its work there", owner, extra=self._log_extra(object_id)
            )
        self._elsewhere[object_id] = owner

    def stop_routing(self, object_id: str) -> None:
        """The object runs here now."""
        self._elsewhere.pop(object_id, None)

    # -- writes -------------------------------------------------------------------------

    def write(self, object_id: str, delivery: Delivery) -> asyncio.Future[int]:
        """Queue the delivery as an inbox row, behind this node's earlier writes; the future
        tells when it is committed (and its id), or why it is not."""
        future = asyncio.ensure_future(self._event_log.enqueue(delivery.to_inbox(object_id)))
        self._pending[object_id] = future

        def done(f: asyncio.Future[int]) -> None:
            if self._pending.get(object_id) is f:
                del self._pending[object_id]
            if f.exception() is not None:
                log.error(
                    "a %s of socket %s could not be written to the inbox: %s",
                    delivery.kind,
                    delivery.socket_id,
                    f.exception(),
                    extra=self._log_extra(object_id),
                )
                # Its sender must hear that it was lost: the socket closes, and the client
                # reconnects and sends again (a socket this node no longer holds is skipped).
                # A request's or a call's caller hears it from the future.
                if delivery.socket_id:
                    self._output.close(delivery.socket_id, *NOT_RECORDED)

        future.add_done_callback(done)
        return future

    async def settled(self, object_id: str) -> None:
        """Wait until inbox writes already made for this object are committed."""
        while (future := self._pending.get(object_id)) is not None:
            await asyncio.gather(future, return_exceptions=True)

    async def all_settled(self) -> None:
        """Wait until every inbox write already made is committed (or failed)."""
        for object_id in list(self._pending):
            await self.settled(object_id)
