"""A node on its way out: it marks itself draining and hands every object to another host
before its sockets close (a part of ``node.Node``: see ``node_parts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from service.ports.errors import StoreUnavailableError
from service.runtime.activation import Activation
from service.runtime.node_wakes import NodeWakes

log = logging.getLogger(__name__)

_LEAVING = {"action": "shutdown"}


class NodeHandOver(NodeWakes):
    """The way out: draining, and every object handed to another host."""

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until every live object has run, committed and released
        everything it was given, so that shutting connections down loses no reply."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            a.status in ("loading", "running") and (a.busy or a.has_work())
            for a in self.activations.values()
        ):
            await asyncio.sleep(0.01)

    async def hand_over(self) -> None:
        """On the way out, before any socket closes: give every object to another host.

        No new work is taken (wakes, alarms, polls; requests and frames go to the inbox),
        the turns in flight finish and commit, every object hibernates (snapshot, release of
        its lease), and the work waiting for them (inbox rows, due alarms) wakes the host
        chosen for each, so they run there within moments. Requests this node routed keep
        waiting for their replies, and its sockets keep getting their objects' frames, until
        ``stop``.

        The node marks itself draining first (``nodes.draining_at``), and only then reads
        the hosts it hands its objects to: nobody sends it new objects, and of two hosts
        leaving together at least one sees the other draining, so neither passes an object
        to a host that passes it back.

        A node of role ``all`` with no other live host to hand them to (none, or only
        draining ones) keeps its objects until ``stop``, after its sockets closed: their
        close handlers run here, as they would on a node that runs alone."""
        if self.role == "all" and not self._handed_over:
            await self.membership.drain()
            await self._refresh_hosts()
            if not self.placement.ready():
                await self.drain(self.settings.shutdown_timeout)
                return
        await self._release_all()

    async def _release_all(self) -> None:
        if self._handed_over:
            return
        self._handed_over = True
        started = time.monotonic()
        self._stopping = True
        self.stop_waking()
        self.membership.stop_sweeping()
        for task in self._loops[:2]:  # hibernation and polls; the hosts' list stays fresh
            task.cancel()
        for task in self._loops[:2]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        armed = self.alarms.armed()
        self.alarms.close()
        # Marked before the hosts are read (see hand_over); from now on, what this node is
        # sent it passes on (``_on_wake``).
        await self.membership.drain()
        await self._refresh_hosts()
        # Each object as soon as its own turns are done: one may wait on a call to another
        # that is leaving too, and runs on once that one has moved.
        released = await asyncio.gather(
            *(self._hand_over(a) for a in list(self.activations.values()))
        )
        # Work no activation took (objects that could not be revived): to the inbox, in
        # order, for whichever node runs them next.
        for object_id, deliveries in list(self._waiting.items()):
            for delivery in self._keep(object_id, deliveries):
                self.inbox.write(object_id, delivery)
        self._waiting.clear()
        await self.inbox.all_settled()
        if self.role == "gateway" or not self._loops:
            return  # it ran no objects, or never started: it has nobody to wake
        try:
            waiting = await self.event_log.objects_with_inbox()
        except StoreUnavailableError as error:
            log.warning("could not read the inbox on the way out: %s", error, extra=_LEAVING)
            waiting = []
        await self.placement.pass_on(sorted({*waiting, *armed}), leaving=True)
        log.info(
            "handed %d objects over in %.3f s",
            sum(released),
            time.monotonic() - started,
            extra=_LEAVING,
        )

    async def _hand_over(self, activation: Activation) -> bool:
        """Finish the object's turns, hibernate it, and wake it on the host chosen for it
        (its clients' next message then finds it running there)."""
        with contextlib.suppress(Exception):
            await activation.ready
        deadline = time.monotonic() + self.settings.shutdown_timeout
        while activation.accepting and (activation.busy or activation.has_work()):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        if activation.status != "running":
            return False
        await activation.hibernate()
        await self.inbox.settled(activation.key)
        await self.placement.pass_on([activation.key], leaving=True)
        return True
