"""What every part of a node shares: its components and its tables of live objects, as
``node.Node.__init__`` makes them, and the few answers each part asks of the others.

The node is one class written in parts, one module each, every part built on the one before
it: ``node_objects`` (the objects live here and the work that reaches them), ``node_wakes``
(notifications, polls, hibernation and the lease), ``node_hand_over`` (the way out),
``node_routing`` (requests and calls, carried to their object's owner) and ``node`` (start
and stop, and how the parts fit together).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from service.api.application import Application
from service.api.durable_object import DurableObject
from service.api.limits import Limits
from service.api.namespace import Env
from service.metrics import Metrics
from service.ports.auto_responses import AutoResponses
from service.ports.event_log import EventLog
from service.ports.socket_output import SocketOutput
from service.runtime.activation import Activation, Services
from service.runtime.alarms import AlarmScheduler
from service.runtime.delivery import Delivery
from service.runtime.inbox_writes import InboxWrites
from service.runtime.membership import Membership
from service.runtime.node_settings import NodeSettings
from service.runtime.outbox_delivery import OutboxDelivery
from service.runtime.placement import Placement
from service.runtime.replies import Replies
from service.tasks import BackgroundTasks


class NodeParts:
    """The attributes every part of the node uses (``Node.__init__`` assigns them)."""

    app: Application
    role: str
    event_log: EventLog
    settings: NodeSettings
    limits: Limits
    metrics: Metrics
    env: Env
    activations: dict[str, Activation]
    alarms: AlarmScheduler
    _output: SocketOutput
    _auto_responses: AutoResponses
    inbox: InboxWrites
    outbox: OutboxDelivery
    callers: Replies
    _waiting: dict[str, list[Delivery]]
    _reviving: set[str]
    _on_fatal: Callable[[str], None] | None
    membership: Membership
    inbox_attempts: dict[int, int]
    tasks: BackgroundTasks
    _services: Services
    placement: Placement
    _registered: set[str]
    _loops: list[asyncio.Task[None]]
    _stopping: bool
    _handed_over: bool
    _waking: bool

    @property
    def runs_objects(self) -> bool:
        """Whether this node wakes objects now: not a gateway, not on its way out."""
        return self.role != "gateway" and not self._stopping

    @property
    def shutdown_timeout(self) -> float:
        return self.settings.shutdown_timeout

    def class_of(self, binding: str) -> type[DurableObject] | None:
        """The class this node serves under ``binding``, if any."""
        return self.app.bindings.get(binding)

    def stop_waking(self) -> None:
        """Shutting down: frames for hibernated objects go to the inbox, for the next node."""
        self._waking = False

    def log_extra(self, object_id: str) -> dict[str, str]:
        """The ``extra`` of a log line about an object: its label too while it is live."""
        activation = self.activations.get(object_id)
        if activation is not None and activation.binding:
            return activation.log_extra("runtime")
        return {"object_id": object_id, "action": "runtime"}

    def live_count(self) -> int:
        """Objects in memory: loading, running, or still closing on their way out."""
        return len(self.activations)
