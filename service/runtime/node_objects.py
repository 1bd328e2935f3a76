"""The objects live on a node and the work that reaches them: socket events and alarms
delivered in order, activations woken, revived after a reset, or their work routed to the
node that owns them (a part of ``node.Node``: see ``node_parts``).
"""

from __future__ import annotations

import asyncio
import logging

from service.api.errors import ObjectResetError
from service.api.ids import DurableObjectId
from service.backoff import Backoff
from service.ports.errors import OwnedElsewhereError, StoreUnavailableError
from service.runtime.activation import Activation
from service.runtime.delivery import Delivery
from service.runtime.inbox_writes import NOT_RECORDED
from service.runtime.node_parts import NodeParts

log = logging.getLogger(__name__)


class NodeObjects(NodeParts):
    """The node's live objects, and the work delivered to them."""

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
        elif self.runs_objects and any(d.inbox_id is not None and d.attempts for d in undelivered):
            # Inbox rows whose commit the database refused are read again now, not at the
            # next poll: each refusal counts, and a row refused ``max_attempts`` times is
            # dropped and its sender told (a routed request's caller gets its answer).
            self.tasks.spawn(self._wake(object_id))

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
            if delivery.kind in ("fetch", "alarm", "rpc", "operator"):
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
