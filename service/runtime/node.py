"""The runtime of one node: which objects are live, how work reaches them, when they sleep.

Work for a live object goes straight into its mailbox. Work for an object that is not live
here wakes it here (placement by traffic), unless another live node holds its lease: then
it is written to the inbox, in order, and the flush that commits it wakes the owner with one
NOTIFY on that node's channel; the owner drains its inbox, recording each row once, in the
commit that consumes it. A slow poll of the inbox backs the notifications up. What objects
running elsewhere send to this node's sockets arrives through its outbox
(``outbox_delivery``), read on the same notifications, reconnects and polls; so do the
replies to the requests, upgrades and RPC calls this node routed to their objects' owners
(``replies``): their callers wait here, up to the route timeout.

The node holds its objects under a lease (``membership``): while its heartbeats do not get
through it runs none of them, and once declared dead it stops for good.

A node has a role. ``all`` does everything above. A ``gateway`` holds sockets and runs no
object: all their work, and every request and call, goes to the inbox; the flush wakes the
object's live owner, or this node when nobody owns it, and this node passes that wake on to
a host chosen by rendezvous hashing (``placement``). A ``host`` runs objects and holds no
client sockets (the gateway layer refuses clients). On its way out (SIGTERM) a node that
runs objects marks itself draining, so that nobody sends it new objects, and hands them over
first (``hand_over``): it takes no new work, finishes the turns in flight, hibernates every
object (snapshot, release) and passes the work waiting for them on to another host that is
not draining, which wakes them at once; only then do its own sockets close.

The class is written in parts, one module each, every part built on the one before it (see
``node_parts``); this one builds the node and starts and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from service.api.application import Application
from service.api.limits import Limits
from service.api.namespace import DurableObjectNamespace, Env
from service.metrics import Metrics
from service.ports.auto_responses import AutoResponses
from service.ports.event_log import EventLog
from service.ports.socket_events import DISCONNECTED_REASON
from service.ports.socket_output import SocketOutput
from service.runtime import object_logs
from service.runtime.activation import Activation, Services
from service.runtime.alarms import AlarmScheduler
from service.runtime.delivery import Delivery
from service.runtime.inbox_writes import InboxWrites
from service.runtime.membership import Membership
from service.runtime.node_routing import NodeRouting
from service.runtime.node_settings import NodeSettings
from service.runtime.outbox_delivery import OutboxDelivery
from service.runtime.placement import Placement
from service.runtime.replies import Replies
from service.tasks import BackgroundTasks

log = logging.getLogger(__name__)


class Node(NodeRouting):
    """Hosts the application's objects on this node (the API's ObjectHost)."""

    def __init__(
        self,
        app: Application,
        event_log: EventLog,
        output: SocketOutput,
        auto_responses: AutoResponses,
        *,
        settings: NodeSettings | None = None,
        limits: Limits | None = None,
        metrics: Metrics | None = None,
        address: str | None = None,
        role: str = "all",
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        #: all, gateway (sockets only) or host (objects only).
        self.role = role
        self.event_log = event_log
        self.settings = settings or NodeSettings()
        self.limits = limits or Limits()
        self.metrics = metrics or Metrics()
        namespaces: dict[str, Any] = {
            name: DurableObjectNamespace(name, app.unique_keys[name], self) for name in app.bindings
        }
        self.env = Env({**app.vars, **namespaces})
        self.activations: dict[str, Activation] = {}
        self.alarms = AlarmScheduler(self, event_log)
        self._output = output
        self._auto_responses = auto_responses
        self.inbox = InboxWrites(event_log, output, self.log_extra)
        self.outbox = OutboxDelivery(
            event_log, output, auto_responses=auto_responses, on_reply=self.replied
        )
        #: Callers of this node waiting for the owners of their objects to reply.
        self.callers = Replies(event_log.node_id)
        #: Work for objects that no activation takes now (asleep, waking, leaving memory or
        #: being revived after a reset), in arrival order: the next activation takes it
        #: first, after the object's inbox (see ``deliver`` and ``gone``).
        self._waiting: dict[str, list[Delivery]] = {}
        #: Objects with a task bringing them (back) into memory for their waiting work.
        self._reviving: set[str] = set()
        #: What the process does when this node is declared dead (it must stop).
        self._on_fatal = on_fatal
        closed = Delivery("close", code=1006, reason=DISCONNECTED_REASON, was_clean=False)
        self.membership = Membership(
            event_log,
            address=address,
            role=role,
            sweeps=role != "gateway",
            lease_timeout=self.settings.lease_timeout,
            retention=self.settings.node_retention,
            close=closed.to_inbox("").data,
            on_lapsed=self._lease_lapsed,
            on_renewed=self._lease_renewed,
            on_dead=self._declared_dead,
            on_swept=self._swept,
        )
        #: Failed attempts per inbox row (a row that keeps failing is dropped, not retried).
        self.inbox_attempts: dict[int, int] = {}
        self.tasks = BackgroundTasks(log)
        self._services = Services(
            host=self,
            bindings=self,
            event_log=event_log,
            output=output,
            auto_responses=auto_responses,
            alarms=self.alarms,
            limits=self.limits,
            settings=self.settings,
            inbox_attempts=self.inbox_attempts,
            metrics=self.metrics,
            tasks=self.tasks,
            callers=self.callers,
        )
        #: The live hosts, and the one an object nobody owns goes to from here.
        self.placement = Placement(event_log)
        #: Objects this node entered in the catalog (or found there) for a host to claim.
        self._registered: set[str] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._handed_over = False
        #: Whether a frame for a hibernated object wakes it here (until shutdown begins; a
        #: gateway never wakes one).
        self._waking = role != "gateway"
        #: Whether this node's objects' log lines are being kept (``object_logs.install``).
        self._capturing = False

    # -- start and stop -----------------------------------------------------------------

    async def start(self) -> None:
        """Join (take the node id and its lease), close what a previous run of this id left
        open, start listening, heartbeating, sweeping and polling; keep what objects log."""
        if not self._capturing:
            object_logs.install(self.settings.object_log_level)
            self._capturing = True
        await self.membership.join()
        for object_id, socket_id in await self.event_log.stale_sockets():
            self.inbox.write(
                object_id,
                Delivery(
                    "close", socket_id, code=1006, reason=DISCONNECTED_REASON, was_clean=False
                ),
            )
        self.outbox.start()
        self.event_log.listen(
            self._on_wake,
            self._on_connect,
            on_outbox=self.outbox.notified,
            probe_interval=self.settings.listener_probe_interval,
        )
        await self._refresh_hosts()
        self._loops = [
            asyncio.create_task(self._sweep_loop(), name="hibernation-sweep"),
            asyncio.create_task(self._poll_loop(), name="inbox-poll"),
            asyncio.create_task(self._hosts_loop(), name="live-hosts"),
        ]
        self.membership.start()

    async def serving_at(self, address: str) -> None:
        """Record in ``nodes`` the address the node's server listens on, once it does."""
        await self.membership.serving_at(address)

    async def stop(self) -> None:
        """Hand every object over (if not done yet), then answer the callers still waiting,
        finish the background work and the outbox, and leave the cluster."""
        await self._release_all()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.callers.fail_all("this node is shutting down: the object's owner did not reply")
        await self.tasks.wait(self.settings.shutdown_timeout)
        await self.inbox.all_settled()
        await self.outbox.stop()
        # Last: until now the node held its objects and the sockets' closes were written.
        try:
            await self.membership.leave()
        finally:
            if self._capturing:
                object_logs.uninstall()
                self._capturing = False
