"""This node's lease on its objects: taken at start, renewed by heartbeats, given up at stop;
and the takeover of nodes that died.

Other nodes count this one live until its last heartbeat is ``lease_timeout`` old by the
database's clock. The node counts itself live until ``lease_timeout`` after it *sent* its
last successful heartbeat, by its own monotonic clock: the database stamped that heartbeat
later, so the node gives its lease up before anyone may take it. Heartbeats go every third
of the lease; a failed one is retried at once, with backoff, so a lease lapses only after a
whole lease timeout without one getting through.

A lapsed lease means another node may now claim this one's objects: the node stops acting
as their owner (``on_lapsed``) until a heartbeat gets through again (``on_renewed``). A
paused or partitioned node cannot even notice that in time, which is why every append is
fenced by the owner epoch: this is the courtesy, the epoch is the guarantee. A heartbeat
the database refuses because a survivor swept the node, or a newer run took its id, means
the node was declared dead: its sockets are closed in the log, and it must stop for good
(``on_dead``).

Any live node that runs objects (not a gateway) sweeps dead ones
(``NodeDirectory.sweep_dead_node``): the first to get a dead node's row closes that node's
sockets in the log and wakes their objects, which it may then run itself.

A node on its way out marks its row draining (``drain``) before it hands its objects over,
so that nobody sends it new ones; it keeps its lease until it leaves. Every node, at start
and then every ``PRUNE_EVERY`` seconds, deletes the rows of nodes gone for longer than the
retention that nothing refers to any more (``NodeDirectory.prune``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from service.backoff import Backoff
from service.ports.cluster import NodeDirectory, SweptNode
from service.ports.errors import StoreError

log = logging.getLogger(__name__)

_EXTRA = {"action": "lease"}

#: Seconds between two prunes of the rows of nodes long gone (each node also prunes as it
#: starts): they are few, and only the retention's age matters.
PRUNE_EVERY = 3600.0


class Membership:
    """The node's row in ``nodes``, its heartbeats, and its sweeps of dead nodes."""

    def __init__(
        self,
        directory: NodeDirectory,
        *,
        address: str | None,
        role: str,
        sweeps: bool = True,
        lease_timeout: float,
        retention: float = 86400.0,
        close: dict[str, Any],
        on_lapsed: Callable[[], None],
        on_renewed: Callable[[], None],
        on_dead: Callable[[str], None],
        on_swept: Callable[[SweptNode], None],
    ) -> None:
        self._directory = directory
        self._address = address
        self._role = role
        #: Whether this node sweeps dead ones: only a node that runs objects does, so the
        #: objects whose sockets it closes wake where they can run (on it).
        self._sweeps = sweeps
        self.lease_timeout = lease_timeout
        #: Seconds the rows of nodes gone are kept (see ``prune``).
        self.retention = retention
        #: The node has marked itself draining (or tried to).
        self.draining = False
        #: The inbox data of the close a sweep records for each socket of a dead node.
        self._close = close
        self._on_lapsed = on_lapsed
        self._on_renewed = on_renewed
        self._on_dead = on_dead
        self._on_swept = on_swept
        self._holds_lease = False
        #: The lease lapsed at least once (a renewal is then news worth telling).
        self._lapsed = False
        self._dead = False
        #: Loop time until which the lease holds, as far as this node knows.
        self._valid_until = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def interval(self) -> float:
        """Seconds between heartbeats, and between looks for dead nodes."""
        return self.lease_timeout / 3

    @property
    def holds_lease(self) -> bool:
        """Whether this node may act as the owner of its objects now."""
        return self._holds_lease

    async def join(self) -> None:
        """Take the node id (NodeIdInUseError if a live node holds it); the lease starts."""
        sent = asyncio.get_running_loop().time()
        await self._directory.join(self._address, self._role, self.lease_timeout)
        self._renewed(sent)

    def start(self) -> None:
        """Heartbeat, prune the nodes long gone, and sweep dead nodes, until ``leave``."""
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name="heartbeats"),
            asyncio.create_task(self._prune(), name="prune-nodes"),
        ]
        if self._sweeps:
            self._tasks.append(asyncio.create_task(self._sweep_dead(), name="takeover"))

    def stop_sweeping(self) -> None:
        """A node on its way out takes over nobody (it keeps its heartbeats until it leaves)."""
        for task in self._tasks[1:]:
            task.cancel()

    async def serving_at(self, address: str) -> None:
        """Record the address the node's server listens on, known once it listens (a port
        of 0 is chosen then)."""
        self._address = address
        try:
            async with asyncio.timeout(self.interval):
                await self._directory.serving_at(address)
        except (StoreError, TimeoutError) as error:
            log.warning("could not record the node's address %s: %s", address, error, extra=_EXTRA)

    async def drain(self) -> None:
        """Mark the node draining, once: it is handing its objects over, and other nodes
        send it none from now on (its stop ends the mark). A node that cannot mark itself
        goes on leaving: what it is sent meanwhile, it passes on."""
        if self.draining:
            return
        self.draining = True
        try:
            async with asyncio.timeout(self.interval):
                await self._directory.drain()
        except (StoreError, TimeoutError) as error:
            log.warning(
                "could not mark the node draining (other nodes may still send it objects, "
                "which it passes on): %s",
                str(error) or "no answer in time",
                extra=_EXTRA,
            )

    async def leave(self) -> None:
        """Stop heartbeating and mark the node stopped: its objects are free to claim."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._holds_lease = False
        if self._dead:
            return
        try:
            async with asyncio.timeout(self.lease_timeout):
                await self._directory.leave()
        except (StoreError, TimeoutError) as error:
            log.warning(
                "could not mark the node stopped (it counts as dead once its lease runs out): %s",
                error,
                extra=_EXTRA,
            )

    # -- heartbeats ---------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(0.05, self.interval)
        while True:
            sent = loop.time()
            try:
                async with asyncio.timeout(self.interval):
                    alive = await self._directory.heartbeat()
            except (StoreError, TimeoutError) as error:
                log.warning(
                    "heartbeat failed (%s); the lease runs out in %.1f s",
                    str(error) or "no answer in time",
                    max(0.0, self._valid_until - loop.time()) if self._holds_lease else 0.0,
                    extra=_EXTRA,
                )
                await asyncio.sleep(backoff.next())
                continue
            if not alive:
                self._declared_dead()
                return
            backoff.reset()
            self._renewed(sent)
            await asyncio.sleep(max(0.0, sent + self.interval - loop.time()))

    def _renewed(self, sent: float) -> None:
        self._valid_until = sent + self.lease_timeout
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = asyncio.get_running_loop().call_at(self._valid_until, self._lapse)
        if not self._holds_lease and not self._dead:
            self._holds_lease = True
            if self._lapsed:
                log.warning("heartbeats get through again: the lease is renewed", extra=_EXTRA)
                self._on_renewed()

    def _lapse(self) -> None:
        self._watchdog = None
        if not self._holds_lease:
            return
        self._holds_lease = False
        self._lapsed = True
        log.error(
            "no heartbeat got through for %g s: the lease lapsed; this node stops running "
            "objects until it renews it (another node may take them meanwhile)",
            self.lease_timeout,
            extra=_EXTRA,
        )
        self._on_lapsed()

    def _declared_dead(self) -> None:
        self._dead = True
        self._holds_lease = False
        if self._watchdog is not None:
            self._watchdog.cancel()
        reason = (
            "this node was declared dead (its lease ran out and another node swept it, or a "
            "newer node took its id): its sockets are closed in the log and its objects may "
            "run elsewhere, so it stops"
        )
        log.critical("%s", reason, extra=_EXTRA)
        self._on_dead(reason)

    # -- the rows of nodes long gone ----------------------------------------------------

    async def _prune(self) -> None:
        while True:
            try:
                pruned = await self._directory.prune(self.retention)
            except StoreError as error:
                log.warning("could not prune the nodes long gone: %s", error, extra=_EXTRA)
            else:
                if pruned:
                    log.info(
                        "forgot %d nodes gone for more than %g s: %s",
                        len(pruned),
                        self.retention,
                        ", ".join(sorted(pruned)),
                        extra=_EXTRA,
                    )
            await asyncio.sleep(PRUNE_EVERY)

    # -- takeover -----------------------------------------------------------------------

    async def _sweep_dead(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self._holds_lease:
                continue
            try:
                while (swept := await self._directory.sweep_dead_node(self._close)) is not None:
                    log.warning(
                        "took over node %s: closed its %d open sockets in the log, woke %d objects",
                        swept.node_id,
                        swept.sockets,
                        swept.objects,
                        extra=_EXTRA,
                    )
                    self._on_swept(swept)
            except StoreError as error:
                log.warning("looking for dead nodes failed: %s", error, extra=_EXTRA)
