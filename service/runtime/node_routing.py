"""Requests, RPC calls and operator actions for a node's objects (the API's ObjectHost): run
here, or carried through the inbox to the node that owns the object or will run it, and its
reply awaited (a part of ``node.Node``: see ``node_parts``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from service.api import rpc
from service.api.errors import NoHostError, OwnerTimeoutError
from service.api.http import Request, Response
from service.api.ids import DurableObjectId
from service.ports.errors import OwnedElsewhereError, StoreUnavailableError
from service.ports.operator_actions import Operated, OperatorAction
from service.ports.records import RemoteOutput
from service.ports.socket_events import DISCONNECTED_REASON
from service.runtime import replies, storage_errors
from service.runtime.activation import Activation
from service.runtime.delivery import Delivery
from service.runtime.node_hand_over import NodeHandOver
from service.runtime.operator_turns import OperatorOutcome

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a request waits for the database to answer a probe while it is taken to be away.
PROBE_TIMEOUT = 1.0

#: Object ids a node that runs no objects remembers having entered in the catalog (past it,
#: it forgets them all: entering one again costs a round trip, and changes nothing).
REGISTERED_KEPT = 100_000

#: Largest body of a request carried to another node, unless ``max_message_bytes`` is larger
#: (the gateway's own limit on request bodies is the larger of the two).
ROUTED_BODY_BYTES = 1 << 20


class NodeRouting(NodeHandOver):
    """Requests and calls to the node's objects, wherever these run."""

    async def fetch(self, binding: str, object_id: DurableObjectId, request: Request) -> Response:
        """Deliver a request to an object and return its response once it is committed.

        An object another live node owns gets the request through the inbox, and its reply
        (a 101 included: the socket is then held here) comes back through the outbox."""
        key = str(object_id)
        return await self._on_owner(
            binding,
            object_id,
            lambda future: Delivery("fetch", request=request, future=future),
            lambda owner: self._fetch_elsewhere(key, owner, request),
        )

    async def call(self, binding: str, object_id: DurableObjectId, call: rpc.Call) -> rpc.Outcome:
        """Run a method of an object (an RPC call through a stub) as one of its deliveries, in
        order with its other work; return its outcome once the turn is committed.

        An object no live node owns wakes here, as for a request; one that another live node
        owns gets the call through the inbox, and its outcome comes back through the outbox.
        """
        key = str(object_id)
        return await self._on_owner(
            binding,
            object_id,
            lambda future: Delivery("rpc", call=call, future=future),
            lambda owner: self._elsewhere(
                key, owner, Delivery("rpc", call=call, request_id=call.call_id)
            ),
        )

    async def operate(
        self, object_id: str, binding: str, name: str | None, action: OperatorAction
    ) -> Operated:
        """Run an operator's action as one of the object's turns, in order with its other
        work, on its owner: here when this node owns it or nobody does (it wakes here), else
        through the inbox as a request goes. Returns once the event recording it is
        committed; raises the owner's refusal (``OperatorActionError``)."""
        outcome: OperatorOutcome = await self._on_owner(
            binding,
            DurableObjectId(object_id, name),
            lambda future: Delivery("operator", action=action, future=future),
            lambda owner: self._elsewhere(
                object_id,
                owner,
                Delivery("operator", action=action, request_id=uuid.uuid4().hex),
            ),
        )
        return outcome.result()

    async def _on_owner(
        self,
        binding: str,
        object_id: DurableObjectId,
        here: Callable[[asyncio.Future[T]], Delivery],
        there: Callable[[str], Awaitable[T]],
    ) -> T:
        """Run a request, call or action on the object's owner: as the delivery ``here``
        makes, on this node when it owns the object or nobody does (it wakes here); else
        ``there``, on the owner (or the host chosen for the object), through the inbox."""
        if self._goes_elsewhere(str(object_id)):
            return await there(await self._host_for(binding, object_id))
        try:
            activation = await self._activation(binding, object_id)
        except OwnedElsewhereError as error:
            return await there(error.owner)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        activation.enqueue(here(future))
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
        host = self.placement.choose(key, leaving=self._stopping)
        if host is None:
            await self._refresh_hosts()
            host = self.placement.choose(key, leaving=self._stopping)
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
