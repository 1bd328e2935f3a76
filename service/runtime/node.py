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
runs objects hands them over first (``hand_over``): it takes no new work, finishes the turns
in flight, hibernates every object (snapshot, release) and passes the work waiting for them
on to another host, which wakes them at once; only then do its own sockets close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from service.api import rpc
from service.api.application import Application
from service.api.durable_object import DurableObject
from service.api.errors import NoHostError, ObjectResetError, OwnerTimeoutError
from service.api.http import Request, Response
from service.api.ids import DurableObjectId
from service.api.limits import Limits
from service.api.namespace import DurableObjectNamespace, Env
from service.backoff import Backoff
from service.metrics import Metrics
from service.ports.auto_responses import AutoResponses
from service.ports.cluster import SweptNode
from service.ports.errors import OwnedElsewhereError, StoreUnavailableError
from service.ports.event_log import EventLog
from service.ports.records import RemoteOutput
from service.ports.socket_events import DISCONNECTED_REASON
from service.ports.socket_output import SocketOutput
from service.runtime import object_logs, replies, storage_errors
from service.runtime.activation import Activation, Services
from service.runtime.alarms import AlarmScheduler
from service.runtime.delivery import Delivery
from service.runtime.inbox_writes import NOT_RECORDED, InboxWrites
from service.runtime.membership import Membership
from service.runtime.node_settings import NodeSettings
from service.runtime.outbox_delivery import OutboxDelivery
from service.runtime.placement import Placement
from service.runtime.replies import Replies
from service.tasks import BackgroundTasks

log = logging.getLogger(__name__)

_LEAVING = {"action": "shutdown"}

#: Seconds a request waits for the database to answer a probe while it is taken to be away.
PROBE_TIMEOUT = 1.0

#: Object ids a node that runs no objects remembers having entered in the catalog (past it,
#: it forgets them all: entering one again costs a round trip, and changes nothing).
REGISTERED_KEPT = 100_000

#: Largest body of a request carried to another node, unless ``max_message_bytes`` is larger
#: (the gateway's own limit on request bodies is the larger of the two).
ROUTED_BODY_BYTES = 1 << 20


class Node:
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
        self.outbox = OutboxDelivery(event_log, output, on_reply=self.replied)
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

    @property
    def runs_objects(self) -> bool:
        """Whether this node wakes objects now: not a gateway, not on its way out."""
        return self.role != "gateway" and not self._stopping

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

        A node of role ``all`` with no other live host to hand them to keeps its objects
        until ``stop``, after its sockets closed: their close handlers run here, as they
        would on a node that runs alone."""
        if self.role == "all" and not self._handed_over:
            await self._refresh_hosts()
            if not any(host != self.callers.node_id for host in self.placement.hosts):
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

    @property
    def shutdown_timeout(self) -> float:
        return self.settings.shutdown_timeout

    def class_of(self, binding: str) -> type[DurableObject] | None:
        """The class this node serves under ``binding``, if any."""
        return self.app.bindings.get(binding)

    def stop_waking(self) -> None:
        """Shutting down: frames for hibernated objects go to the inbox, for the next node."""
        self._waking = False

    # -- the API's ObjectHost -----------------------------------------------------------

    async def fetch(self, binding: str, object_id: DurableObjectId, request: Request) -> Response:
        """Deliver a request to an object and return its response once it is committed.

        An object another live node owns gets the request through the inbox, and its reply
        (a 101 included: the socket is then held here) comes back through the outbox."""
        if self._goes_elsewhere(str(object_id)):
            host = await self._host_for(binding, object_id)
            return await self._fetch_elsewhere(str(object_id), host, request)
        try:
            activation = await self._activation(binding, object_id)
        except OwnedElsewhereError as error:
            return await self._fetch_elsewhere(str(object_id), error.owner, request)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        activation.enqueue(Delivery("fetch", request=request, future=future))
        return await future

    async def call(self, binding: str, object_id: DurableObjectId, call: rpc.Call) -> rpc.Outcome:
        """Run a method of an object (an RPC call through a stub) as one of its deliveries, in
        order with its other work; return its outcome once the turn is committed.

        An object no live node owns wakes here, as for a request; one that another live node
        owns gets the call through the inbox, and its outcome comes back through the outbox.
        """
        if self._goes_elsewhere(str(object_id)):
            host = await self._host_for(binding, object_id)
            delivery = Delivery("rpc", call=call, request_id=call.call_id)
            routed: rpc.Outcome = await self._elsewhere(str(object_id), host, delivery)
            return routed
        try:
            activation = await self._activation(binding, object_id)
        except OwnedElsewhereError as error:
            delivery = Delivery("rpc", call=call, request_id=call.call_id)
            outcome: rpc.Outcome = await self._elsewhere(str(object_id), error.owner, delivery)
            return outcome
        future: asyncio.Future[rpc.Outcome] = asyncio.get_running_loop().create_future()
        activation.enqueue(Delivery("rpc", call=call, future=future))
        return await future

    async def _activation(self, binding: str, object_id: DurableObjectId) -> Activation:
        """The object's live activation here, woken if need be; OwnedElsewhereError if
        another live node owns it."""
        if binding not in self.app.bindings:
            raise LookupError(f"no binding named {binding!r}")
        await self._check_database()
        try:
            activation = await self.activate(str(object_id), binding, object_id.name)
            while not activation.accepting:  # reset between its wake and this delivery
                activation = await self.activate(str(object_id), binding, object_id.name)
        except StoreUnavailableError as error:
            raise storage_errors.for_user(error) from error
        return activation

    def _goes_elsewhere(self, object_id: str) -> bool:
        """Whether a request or call is sent to a host rather than run here: always on a
        gateway; on the way out, unless the object is still live here (it runs it before
        it leaves, as it does the turns in flight, and a call between two objects of this
        node does not wait for both to move)."""
        if self.role == "gateway":
            return True
        if not self._stopping:
            return False
        activation = self.activations.get(object_id)
        return activation is None or not activation.accepting

    async def _host_for(self, binding: str, object_id: DurableObjectId) -> str:
        """For a node that runs no objects now: the host the object's work goes to if nobody
        owns it (its owner, if it has one, gets it anyway: the flush wakes the owner). With no
        live host, NoHostError: nothing could run it."""
        if binding not in self.app.bindings:
            raise LookupError(f"no binding named {binding!r}")
        await self._check_database()
        key = str(object_id)
        if key not in self._registered:
            try:
                await self.event_log.register(key, binding, object_id.name)
            except StoreUnavailableError as error:
                raise storage_errors.for_user(error) from error
            if len(self._registered) >= REGISTERED_KEPT:
                self._registered.clear()
            self._registered.add(key)
        host = self.placement.choose(str(object_id))
        if host is None:
            await self._refresh_hosts()
            host = self.placement.choose(str(object_id))
        if host is None:
            raise NoHostError(
                "no node that runs objects is live: this node "
                + ("is a gateway" if self.role == "gateway" else "is shutting down")
                + ", so the object cannot run until a host starts"
            )
        return host

    async def _fetch_elsewhere(self, object_id: str, owner: str, request: Request) -> Response:
        limit = max(self.limits.max_message_bytes, ROUTED_BODY_BYTES)
        if len(request.body) > limit:
            return Response(
                f"Payload too large: the object runs on another node, and a request carried "
                f"there may have a body of at most {limit} bytes.",
                status=413,
            )
        delivery = Delivery("fetch", request=request, request_id=uuid.uuid4().hex)
        response: Response = await self._elsewhere(object_id, owner, delivery)
        return response

    async def _elsewhere(self, object_id: str, owner: str, delivery: Delivery) -> Any:
        """Route a request or call to the object's owner through the inbox and wait for its
        reply (``replies``), at most the route timeout."""
        assert delivery.request_id is not None
        delivery.reply_to = self.callers.node_id
        future = self.callers.wait(delivery.request_id)
        if self.runs_objects:  # its work goes there too, until the owner changes
            self.inbox.route(object_id, owner)
        timeout = self.settings.route_timeout
        try:
            async with asyncio.timeout(timeout):
                # Shielded: a timeout must not cancel a write the group commit holds.
                await asyncio.shield(self.inbox.write(object_id, delivery))
                result = await future
        except TimeoutError:
            raise OwnerTimeoutError(
                f"The object runs on node {owner!r}, which did not answer within {timeout:g} s "
                "(it may be overloaded, paused or failing; if it failed, the node that takes the "
                "object over runs the request). It may still run there."
            ) from None
        except StoreUnavailableError as error:
            raise storage_errors.for_user(error) from error
        finally:
            self.callers.take(delivery.request_id)
        if isinstance(result, Exception):
            raise result
        return result

    def replied(self, row: RemoteOutput) -> None:
        """A reply to a request or call this node routed (read from its outbox, in order):
        settle its caller. A socket it opens is announced to the gateway now, before the
        rows that follow (its frames); if the caller gave up, the socket is closed."""
        future = self.callers.take(row.request_id)
        socket = (row.reply or {}).get("socket")
        if future is None:
            log.info("a reply came after its caller gave up: dropped", extra={"action": "route"})
            if socket is not None:
                self.closed(
                    socket["object_id"], socket["id"], 1006, DISCONNECTED_REASON, was_clean=False
                )
            return
        if socket is not None:
            object_id = socket["object_id"]
            self._output.expect(socket["id"], object_id, socket["binding"], socket["hibernatable"])
            pair = socket.get("auto_response")
            if pair is not None:
                self._auto_responses.set_auto_response(object_id, (pair[0], pair[1]))
        future.set_result(replies.result_of(row))

    async def _check_database(self) -> None:
        """Fail fast while the database refuses connections, rather than run the request and
        wait out the commit's retry window: a quick probe says whether it is back."""
        reason = self.event_log.unavailable()
        if reason is None:
            return
        try:
            await asyncio.wait_for(self.event_log.ping(), PROBE_TIMEOUT)
        except (StoreUnavailableError, TimeoutError):
            raise storage_errors.unavailable(reason) from None

    # -- socket events (the SocketEvents port) ----------------------------------------------------

    def message(self, object_id: str, socket_id: str, data: str | bytes) -> None:
        self.deliver(object_id, Delivery("message", socket_id, data))

    def closed(
        self, object_id: str, socket_id: str, code: int, reason: str, was_clean: bool
    ) -> None:
        self.deliver(
            object_id,
            Delivery("close", socket_id, code=code, reason=reason, was_clean=was_clean),
        )

    def errored(self, object_id: str, socket_id: str, error: str, code: int) -> None:
        self.deliver(object_id, Delivery("error", socket_id, error=error, code=code))

    def deliver(self, object_id: str, delivery: Delivery) -> None:
        """A frame, close or error of a socket: to the object's mailbox, waking it if needed.

        Per-socket order holds through every path: work that arrives while the object has no
        activation taking it (asleep, waking, leaving memory, reset) waits here, in arrival
        order, behind whatever the previous activation did not finish (``gone``), and the
        next activation takes all of it before anything newer. Only once shutdown has begun
        does it go to the inbox, for whichever node runs the object next. Work for an object
        another live node owns goes to the inbox too, behind what waited here for it.
        """
        activation = self.activations.get(object_id)
        if activation is not None and activation.accepting and not self._stopping:
            activation.enqueue(delivery)
        elif self._stopping:
            # Handing over: what the object was given runs here; this goes to its next host
            # (which reads the inbox after this node released it), behind what waits here.
            if object_id in self._waiting:
                self._waiting[object_id].append(delivery)
            else:
                self.inbox.write(object_id, delivery)
        elif self.inbox.routed(object_id) and object_id not in self._waiting:
            self.inbox.write(object_id, delivery)
        elif self._waking or object_id in self._waiting:
            self._waiting.setdefault(object_id, []).append(delivery)
            if activation is None:
                self._revive_soon(object_id)
            # else: the activation is leaving memory; gone() brings the object back
        else:
            self.inbox.write(object_id, delivery)

    def deliver_alarm(self, object_id: str) -> None:
        activation = self.activations.get(object_id)
        if activation is not None and activation.accepting:
            activation.enqueue(Delivery("alarm"))
            return
        self.tasks.spawn(self._wake_for_alarm(object_id))

    async def _wake_for_alarm(self, object_id: str) -> None:
        try:
            activation = await self.activate(object_id)
        except OwnedElsewhereError as error:
            log.debug("alarm left to its owner: %s", error, extra=self.log_extra(object_id))
            return
        except (StoreUnavailableError, LookupError) as error:
            log.warning(
                "alarm could not wake its object: %s", error, extra=self.log_extra(object_id)
            )
            return
        activation.enqueue(Delivery("alarm"))

    async def inbox_settled(self, object_id: str) -> None:
        """Wait until inbox writes already made for this object are committed."""
        await self.inbox.settled(object_id)

    async def outbox_caught_up(self) -> None:
        """Wait until this node's outbox rows committed so far are delivered."""
        await self.outbox.caught_up()

    # -- activation ---------------------------------------------------------------------

    async def activate(
        self, object_id: str, binding: str | None = None, name: str | None = None
    ) -> Activation:
        """The live activation of an object, waking it (claim, replay, construct) if needed.

        Raises OwnedElsewhereError if another live node holds the object's lease, and
        StoreUnavailableError while this node's own lease has lapsed.
        """
        while True:
            activation = self.activations.get(object_id)
            if activation is None:
                break
            if activation.accepting:
                await asyncio.shield(activation.ready)
                return activation
            await asyncio.shield(activation.closed)
        if self.role == "gateway":
            raise LookupError("a gateway runs no objects")
        if not self.membership.holds_lease:
            raise StoreUnavailableError(
                "this node's lease has lapsed (its heartbeats do not get through): it runs no "
                "object until it renews it"
            )
        activation = self._register(object_id, binding, name)
        await self._load(activation, name, existing=binding is None)
        return activation

    def _register(self, object_id: str, binding: str | None, name: str | None) -> Activation:
        activation = Activation(self._services, DurableObjectId(object_id, name), binding)
        self.activations[object_id] = activation
        self.inbox.stop_routing(object_id)
        # The work that waited for the object is its oldest; what arrives from now on is
        # queued behind it. If this activation fails, gone() gives it all back, in order.
        for delivery in self._waiting.pop(object_id, ()):
            activation.enqueue(delivery)
        return activation

    async def _load(self, activation: Activation, name: str | None, *, existing: bool) -> None:
        try:
            await activation.load(name, existing=existing)
        except BaseException as error:
            activation.fail_load(error)
            raise

    def gone(self, activation: Activation, undelivered: list[Delivery]) -> None:
        """An activation left memory; the work it did not finish goes first to the next one,
        ahead of what arrived meanwhile, and the object comes back if there is any."""
        object_id = activation.key
        if self.activations.get(object_id) is activation:
            del self.activations[object_id]
        kept = self._keep(object_id, undelivered)
        current = self.activations.get(object_id)
        if current is not None and current.accepting:
            for delivery in kept:  # a newer activation runs already: it takes them now
                current.enqueue(delivery)
            return
        waiting = self._waiting.pop(object_id, [])
        if kept or waiting:
            self._waiting[object_id] = kept + waiting
            if not self._stopping:
                self._revive_soon(object_id)

    def _keep(self, object_id: str, deliveries: list[Delivery]) -> list[Delivery]:
        """The deliveries worth handing to the next activation; callers of the others hear
        why they were not handled."""
        kept = []
        for delivery in deliveries:
            if delivery.inbox_id is not None and delivery.attempts:
                previous = self.inbox_attempts.get(delivery.inbox_id, 0)
                self.inbox_attempts[delivery.inbox_id] = max(previous, delivery.attempts)
            if delivery.future is not None and not delivery.future.done():
                delivery.future.set_exception(
                    ObjectResetError("The object was reset before it handled this request.")
                )
            if delivery.kind == "fetch" or delivery.kind == "alarm" or delivery.kind == "rpc":
                continue  # the caller got an error / the alarms table still has it
            if delivery.inbox_id is not None:
                continue  # still in the inbox: the next activation drains it
            if delivery.attempts >= self.settings.max_attempts:
                log.error(
                    "dropping a %s of socket %s: the database refused its commit %d times",
                    delivery.kind,
                    delivery.socket_id,
                    delivery.attempts,
                    extra=self.log_extra(object_id),
                )
                # Its sender must hear that it was lost: the socket (this node's: the
                # delivery did not come from the inbox) closes, and the client reconnects.
                self._output.close(delivery.socket_id, *NOT_RECORDED)
                continue
            kept.append(delivery)
        return kept

    def _revive_soon(self, object_id: str) -> None:
        if object_id not in self._reviving:
            self._reviving.add(object_id)
            self.tasks.spawn(self._revive(object_id))

    async def _revive(self, object_id: str) -> None:
        """Bring an object into memory for its waiting work, retrying while the database is
        away. The new activation takes that work when it is registered (``_register``)."""
        backoff = Backoff(0.1, 2.0)
        try:
            while self._waiting.get(object_id) and not self._stopping:
                try:
                    await self.activate(object_id)
                    return
                except OwnedElsewhereError as error:
                    self._route(object_id, error.owner)
                    return
                except StoreUnavailableError as error:
                    log.warning("cannot wake yet: %s", error, extra=self.log_extra(object_id))
                except ObjectResetError:
                    pass  # reset while loading: its work is waiting again
                except LookupError as error:
                    dropped = self._waiting.pop(object_id, [])
                    log.error(
                        "cannot wake: %s; %d deliveries dropped",
                        error,
                        len(dropped),
                        extra=self.log_extra(object_id),
                    )
                    return
                await asyncio.sleep(backoff.next())
        finally:
            self._reviving.discard(object_id)
            if self._waiting.get(object_id) and not self._stopping:
                activation = self.activations.get(object_id)
                if activation is None or not activation.accepting:
                    self._revive_soon(object_id)  # work came back after it had loaded

    def _route(self, object_id: str, owner: str) -> None:
        """Another live node owns the object: its work goes there, through the inbox, the
        work that waited here first (the flushes keep the order they are given)."""
        self.inbox.route(object_id, owner)
        for delivery in self._waiting.pop(object_id, ()):
            self.inbox.write(object_id, delivery)

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

    async def _wake(self, object_id: str) -> None:
        if object_id in self._reviving:
            return  # being woken; it drains its inbox when it loads
        activation = self.activations.get(object_id)
        try:
            if activation is not None and activation.status == "running":
                await activation.take_inbox()
            else:
                await self.activate(object_id)
        except OwnedElsewhereError as error:
            self.inbox.route(object_id, error.owner)
            # The wake was meant for the owner (it claimed the object as the rows were
            # written): pass it on, so its rows wait no longer than a NOTIFY.
            try:
                await self.event_log.nudge([object_id])
            except StoreUnavailableError as nudge_error:
                log.warning(
                    "could not wake the owner: %s", nudge_error, extra=self.log_extra(object_id)
                )
        except StoreUnavailableError as error:
            log.warning(
                "wake failed, the poll will retry: %s", error, extra=self.log_extra(object_id)
            )
        except LookupError as error:
            log.error("cannot wake: %s", error, extra=self.log_extra(object_id))

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

    def log_extra(self, object_id: str) -> dict[str, str]:
        """The ``extra`` of a log line about an object: its label too while it is live."""
        activation = self.activations.get(object_id)
        if activation is not None and activation.binding:
            return activation.log_extra("runtime")
        return {"object_id": object_id, "action": "runtime"}

    # -- figures ------------------------------------------------------------------------

    def live_count(self) -> int:
        """Objects in memory: loading, running, or still closing on their way out."""
        return len(self.activations)
