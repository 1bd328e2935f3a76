"""How work finds a node's objects besides a direct delivery: notifications (wakes), polls
of the inbox and the alarms, the hibernation sweep, the list of live hosts, and what the
node does as its lease lapses, is renewed or ends (a part of ``node.Node``: see
``node_parts``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from service.ports.cluster import SweptNode
from service.ports.errors import StoreUnavailableError
from service.runtime.node_objects import NodeObjects

log = logging.getLogger(__name__)


class NodeWakes(NodeObjects):
    """Wakes, polls, hibernation, and the lease's turns."""

    # -- the lease ------------------------------------------------------------------------

    def _lease_lapsed(self) -> None:
        """Another node may take this one's objects now: stop running them (their work waits
        here, in order, until the lease is renewed or the node is declared dead)."""
        for activation in list(self.activations.values()):
            activation.reset("this node's lease lapsed: another node may take the object")

    def _lease_renewed(self) -> None:
        self.tasks.spawn(self._poll())

    def _declared_dead(self, reason: str) -> None:
        self._lease_lapsed()
        if self._on_fatal is not None:
            self._on_fatal(reason)

    def _swept(self, swept: SweptNode) -> None:
        """A dead node's objects with work waiting (its sockets' closes) are taken now; its
        due alarms with them."""
        self.tasks.spawn(self._poll())

    # -- notifications, polling, hibernation --------------------------------------------

    def _on_wake(self, object_ids: list[str] | None) -> None:
        if not self.runs_objects:
            # A gateway's writes for objects nobody owns wake it, and a node on its way out
            # takes on no work: the host chosen for each object is woken instead. One that
            # is still live here is passed on once it is released (``hand_over``).
            if object_ids is not None:
                passed = [o for o in object_ids if o not in self.activations]
                self.tasks.spawn(self.placement.pass_on(passed, leaving=self._stopping))
            return
        if object_ids is None:
            self.tasks.spawn(self._poll())
            return
        running = [object_id for object_id in object_ids if self._running(object_id)]
        if len(running) > 1:
            self.tasks.spawn(self._take_inboxes(running))
        for object_id in object_ids:
            if len(running) < 2 or object_id not in running:
                self.tasks.spawn(self._wake(object_id))

    def _running(self, object_id: str) -> bool:
        activation = self.activations.get(object_id)
        return (
            activation is not None
            and activation.status == "running"
            and object_id not in self._reviving
        )

    async def _take_inboxes(self, object_ids: list[str]) -> None:
        """The inbox rows of several live objects, in one read: a flush that wrote to many
        objects of this node woke them all with one notification."""
        reading = {
            object_id: activation
            for object_id in object_ids
            if self._running(object_id) and (activation := self.activations.get(object_id))
        }
        for activation in reading.values():
            activation.inbox_read_begins()
        try:
            for object_id in reading:
                await self.inbox.settled(object_id)
            found = await self.event_log.inboxes(list(reading))
        except BaseException as error:
            for activation in reading.values():
                activation.inbox_read_ends(None)
            if not isinstance(error, StoreUnavailableError):
                raise
            log.warning("wake failed, the poll will retry: %s", error, extra={"action": "wake"})
            return
        for object_id, activation in reading.items():
            if self.activations.get(object_id) is activation and self._running(object_id):
                activation.inbox_read_ends(found.get(object_id, []))
            else:  # it changed meanwhile (hibernating, reset): wake it as one
                activation.inbox_read_ends(None)
                self.tasks.spawn(self._wake(object_id))

    async def _on_connect(self) -> None:
        # What was sent while the listener was away was lost: read the tables.
        self.outbox.read_soon()
        self.tasks.spawn(self._poll())

    async def _poll(self) -> None:
        self.outbox.read_soon()  # this node's sockets, whatever the lease
        if not self.runs_objects or not self.membership.holds_lease:
            return
        try:
            object_ids = await self.event_log.objects_with_inbox()
            await self.alarms.poll(self.settings.poll_interval * 2)
        except StoreUnavailableError as error:
            log.warning("poll failed: %s", error, extra={"action": "poll"})
            return
        for object_id in object_ids:
            await self._wake(object_id)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            await self._poll()

    async def _hosts_loop(self) -> None:
        """Read the live hosts once a heartbeat interval (rendezvous hashing over them)."""
        while True:
            await asyncio.sleep(self.membership.interval)
            await self._refresh_hosts()

    async def _refresh_hosts(self) -> None:
        try:
            await self.placement.refresh()
        except StoreUnavailableError as error:
            log.warning("could not read the live hosts: %s", error, extra={"action": "placement"})

    async def _sweep_loop(self) -> None:
        interval = max(0.05, min(1.0, self.settings.hibernate_after / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep()

    def sweep(self) -> None:
        """Hibernate every object idle for ``hibernate_after`` seconds."""
        now = time.monotonic()
        for activation in list(self.activations.values()):
            if activation.can_hibernate(now, self.settings.hibernate_after):
                activation.status = "closing"
                self.metrics.hibernations.inc()
                self.tasks.spawn(activation.hibernate())
