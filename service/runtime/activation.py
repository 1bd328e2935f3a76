"""One live object: its state, its user instance, its mailbox and its output gate.

Deliveries run one at a time, in arrival order. Each finished turn is handed to the event
log without waiting for the commit (writes are pipelined and batched); the frames it sent
are held in the outbox until the commit covering them lands, and are released in order.
If a commit fails, everything held is discarded and the object is rebuilt from the log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn, Protocol, cast

from service.api import core as core_module
from service.api.context import DurableObjectState
from service.api.durable_object import DurableObject
from service.api.errors import ObjectResetError
from service.api.http import Response
from service.api.ids import DurableObjectId
from service.api.limits import Limits
from service.api.namespace import Env
from service.api.websocket import WebSocket
from service.events import snapshot, types
from service.events.fold import ObjectState, apply, undo_of
from service.history import replay
from service.metrics import Metrics
from service.ports.errors import CommitRefusedError, ConflictError
from service.ports.event_log import EventLog
from service.ports.records import Append, Claim, InboxItem
from service.ports.socket_output import SocketTransport
from service.runtime import delivery as delivery_module
from service.runtime import dispatch, storage_errors
from service.runtime.alarms import AlarmScheduler
from service.runtime.delivery import SOCKET_KINDS, Delivery
from service.runtime.node_settings import NodeSettings
from service.runtime.turn import Output, ResetRequested, Turn, rollback
from service.tasks import BackgroundTasks

log = logging.getLogger(__name__)


#: A finished turn's output and the commit it waits for (None: none), with its delivery if
#: a failure of that commit means handling the delivery again.
_Held = tuple[asyncio.Future[None] | None, list[Output], Delivery | None]

#: Event types after whose commit the object's alarm timer must be re-armed.
_ALARM_TYPES = frozenset({"alarm_set", "alarm_deleted", "storage_cleared"})


class ActivationHost(Protocol):
    """What an activation needs from the node that hosts it."""

    event_log: EventLog
    transport: SocketTransport
    tasks: BackgroundTasks
    alarms: AlarmScheduler
    settings: NodeSettings
    metrics: Metrics
    limits: Limits
    env: Env
    #: Failed commits per inbox row, across activations of the node.
    inbox_attempts: dict[int, int]

    def class_of(self, binding: str) -> type[DurableObject] | None: ...

    async def inbox_settled(self, object_id: str) -> None:
        """Wait until inbox writes already made for this object are committed."""

    def gone(self, activation: Activation, undelivered: list[Delivery]) -> None:
        """The activation left memory; ``undelivered`` goes to the next one."""


class Activation:
    """A live instance of one object on this node (the runtime's ObjectCore)."""

    def __init__(
        self, host: ActivationHost, object_id: DurableObjectId, binding: str | None
    ) -> None:
        self.host = host
        self.object_id = object_id
        self.key = str(object_id)
        #: Known once the object is claimed (a wake by id learns it from the catalog).
        self.binding = binding or ""
        self.cls: type[DurableObject] = DurableObject
        self.limits: Limits = host.limits
        self.state = ObjectState()
        self.handles: dict[str, WebSocket] = {}
        self.in_constructor = False
        self.has_alarm_handler = False
        self.current_url: str | None = None
        self.instance: DurableObject | None = None
        #: loading -> running -> closing -> closed
        self.status = "loading"
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_active = time.monotonic()
        self.busy = False
        self._epoch = 0
        self._seq = 0
        self._snapshot_seq = 0
        self._turn: Turn | None = None
        self._mailbox: collections.deque[Delivery] = collections.deque()
        self._wakeup = asyncio.Event()
        #: Finished turns whose output waits for a commit, in turn order (see _pump).
        self._held: collections.deque[_Held] = collections.deque()
        #: Commits not yet settled.
        self._pending: set[asyncio.Future[None]] = set()
        #: Deliveries whose turns did not commit: handled again after a reset, in order.
        self._redo: list[Delivery] = []
        self._last_commit: asyncio.Future[None] | None = None
        self._blockers: list[asyncio.Future[Any]] = []
        self._block_depth = 0
        #: What wait_until() keeps the object awake for.
        self._background = BackgroundTasks(log)
        self._seen_inbox: set[int] = set()
        self._runner: asyncio.Task[None] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self.status in ("loading", "running")

    async def load(self, name: str | None, *, existing: bool) -> None:
        """Claim the object, replay its log, run the constructor, then take its inbox."""
        log_ = self.host.event_log
        started = time.perf_counter()
        if existing:
            claim = await log_.claim_existing(self.key)
            if claim is None:
                raise LookupError(f"object {self.key} does not exist")
        else:
            claim = await log_.claim(self.key, self.binding, name)
        cls = self.host.class_of(claim.binding)
        if cls is None:
            raise LookupError(f"object {self.key} is of binding {claim.binding!r}, not served here")
        self.binding, self.cls = claim.binding, cls
        self.has_alarm_handler = callable(getattr(cls, "alarm", None))
        if claim.name is not None and self.object_id.name is None:
            self.object_id.name = claim.name
        self._epoch = claim.epoch
        # The inbox is read on another connection while the log is replayed.
        inbox = asyncio.ensure_future(self._read_inbox())
        try:
            replayed = await self._replay(claim)
        except BaseException:
            inbox.cancel()
            inbox.add_done_callback(_retrieve)
            raise
        self._queue_inbox(await inbox, first=True)
        if self.status != "loading":
            raise ObjectResetError("the object was reset while it was loading")
        self.status = "running"
        self.ready.set_result(None)
        self._runner = asyncio.create_task(self._run(), name=f"object-{self.key[:12]}")
        elapsed = time.perf_counter() - started
        self.host.metrics.wake_seconds.observe(elapsed)
        log.info(
            "loaded in %.1f ms (%d events replayed after snapshot %d)",
            elapsed * 1000,
            replayed,
            claim.last_seq - replayed,
            extra=self.log_extra(),
        )

    async def _replay(self, claim: Claim) -> int:
        """Rebuild the state from the newest snapshot and the events after it; construct.

        Returns how many events were replayed after the snapshot.
        """
        # Bounded by the claimed seq: the planner then always takes the (object_id, seq)
        # index, whatever other objects' logs make of its row estimates.
        replayed = await replay.state(self.host.event_log, self.key, until_seq=claim.last_seq)
        state = replayed.state
        if state.seq != claim.last_seq:
            raise ConflictError(
                f"object {self.key}: replay reached seq {state.seq}, the catalog says "
                f"{claim.last_seq}"
            )
        self.state = state
        self._seq = state.seq
        self._snapshot_seq = replayed.snapshot_seq
        self.host.transport.set_auto_response(self.key, state.auto_response)
        self._construct()
        return replayed.events

    def _construct(self) -> None:
        turn = self._turn = Turn()
        token = core_module.current_core.set(self)
        self.in_constructor = True
        try:
            ctx = DurableObjectState(self)
            self.instance = self.cls(ctx, self.host.env)
        finally:
            self.in_constructor = False
            core_module.current_core.reset(token)
            self._turn = None
        self._finish(turn)

    async def take_inbox(self) -> None:
        """Queue this object's inbox rows not seen yet, after the work already queued."""
        self._queue_inbox(await self._read_inbox(), first=False)

    async def _read_inbox(self) -> list[InboxItem]:
        await self.host.inbox_settled(self.key)
        return await self.host.event_log.inbox(self.key)

    def _queue_inbox(self, items: list[InboxItem], *, first: bool) -> None:
        """Queue the rows not seen yet; ``first``: oldest first, before newer work."""
        fresh = [
            delivery_module.from_inbox(item)
            for item in items
            if item.id is not None and item.id not in self._seen_inbox
        ]
        limit = self.host.settings.max_attempts
        for delivery in fresh:
            assert delivery.inbox_id is not None
            self._seen_inbox.add(delivery.inbox_id)
            if self.host.inbox_attempts.get(delivery.inbox_id, 0) >= limit:
                log.error(
                    "dropping inbox row %d (%s) after %d failed commits",
                    delivery.inbox_id,
                    delivery.kind,
                    limit,
                    extra=self.log_extra(),
                )
                delivery.kind = "drop"
        if first:
            # Oldest first: the inbox, then the mailbox (the work that waited for this
            # activation, given to it when it was registered, then what arrived since).
            self._mailbox.extendleft(reversed(fresh))
        else:
            self._mailbox.extend(fresh)
        if fresh:
            self._wakeup.set()

    def fail_load(self, error: BaseException) -> None:
        """Loading failed: leave the registry; work that arrived meanwhile is carried over."""
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved: waiters re-raise it themselves
        self.status = "closed"
        waiting = list(self._mailbox)
        self._mailbox.clear()
        self.host.gone(self, waiting)
        if not self.closed.done():
            self.closed.set_result(None)

    def has_work(self) -> bool:
        return bool(self._mailbox or self._pending or self._held or self._blockers)

    def enqueue(self, delivery: Delivery) -> None:
        self._mailbox.append(delivery)
        self.last_active = time.monotonic()
        self._wakeup.set()

    def can_hibernate(self, now: float, idle_after: float) -> bool:
        return (
            self.status == "running"
            and not self.busy
            and not self._mailbox
            and not self._pending
            and not self._held
            and not self._blockers
            and not self._background
            and now - self.last_active >= idle_after
            and all(s.hibernatable for s in self.state.sockets.values())
        )

    async def hibernate(self) -> None:
        """Leave memory: snapshot, release ownership; sockets stay open in the gateway."""
        self.status = "closing"
        await self._stop_runner()
        if self._seq > self._snapshot_seq:
            commit = self.host.event_log.append(
                Append(
                    self.key,
                    self._epoch,
                    self._seq,
                    snapshot=(self._seq, snapshot.encode(self.state)),
                )
            )
            try:
                await commit
            except Exception as error:
                log.warning("snapshot at hibernation failed: %s", error, extra=self.log_extra())
        with contextlib.suppress(Exception):
            await self.host.event_log.release(self.key, self._epoch)
        log.info(
            "hibernated at seq %d with %d sockets open",
            self._seq,
            len(self.state.sockets),
            extra=self.log_extra(),
        )
        if not self.state.sockets:
            # No socket can ask for the auto-response any more; the next wake sets it again.
            self.host.transport.set_auto_response(self.key, None)
        self._close([])

    async def _stop_runner(self) -> None:
        runner = self._runner
        if runner is not None and runner is not asyncio.current_task():
            self._wakeup.set()
            await runner

    def _close(self, undelivered: list[Delivery]) -> None:
        self.status = "closed"
        if not self.ready.done():
            self.ready.set_exception(ObjectResetError("the object was reset while loading"))
            self.ready.exception()
        self.host.gone(self, undelivered)
        if not self.closed.done():
            self.closed.set_result(None)

    def reset(self, reason: str) -> None:
        """Throw the instance away; unfinished work is redone by the next one.

        Turns already handed to the log keep their fate: the output of those that commit is
        still released, in order; that of those that do not is dropped, and their deliveries
        are handled again (they were never recorded, so they are recorded once).
        """
        if self.status in ("closing", "closed"):
            return
        log.warning("object reset: %s", reason, extra=self.log_extra())
        self.status = "closing"
        self.host.tasks.spawn(self._finish_reset())

    async def _finish_reset(self) -> None:
        await self._stop_runner()
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        self._pump()
        undelivered = [*self._redo, *self._mailbox]
        self._mailbox.clear()
        for future in self._blockers:
            future.cancel()
        self._close(undelivered)

    # -- the mailbox --------------------------------------------------------------------

    async def _run(self) -> None:
        while self.status == "running":
            if self._blockers:
                await asyncio.gather(*self._blockers, return_exceptions=True)
                self._blockers = [b for b in self._blockers if not b.done()]
                continue
            if not self._mailbox:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delivery = self._mailbox.popleft()
            self.busy = True
            try:
                await self._deliver(delivery)
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                # A fault of the runtime itself: never leave the object wedged behind it.
                log.exception("delivery failed", extra=self.log_extra())
                self._fail_delivery(delivery, ObjectResetError(f"internal error: {error!r}"))
                self.reset(f"internal error: {error!r}")
            finally:
                self.busy = False
                self.last_active = time.monotonic()

    async def _deliver(self, delivery: Delivery) -> None:
        turn = self._turn = Turn(delivery)
        if delivery.inbox_id is not None:
            turn.consumed_inbox.append(delivery.inbox_id)
        token = core_module.current_core.set(self)
        result: Response | None = None
        try:
            result = await dispatch.run(self, delivery, turn)
        except ResetRequested as reset:
            self._turn = None
            core_module.current_core.reset(token)
            self._fail_delivery(delivery, ObjectResetError(reset.reason))
            self.reset(reset.reason)
            return
        finally:
            if self._turn is turn:
                self._turn = None
                core_module.current_core.reset(token)
        gate = self._finish(turn)
        if delivery.future is not None and result is not None:
            self._respond(delivery.future, gate, result)

    def _respond(
        self,
        future: asyncio.Future[Response],
        gate: asyncio.Future[None] | None,
        response: Response,
    ) -> None:
        def settle(_: object = None) -> None:
            if future.done():
                return
            error = gate.exception() if gate is not None else None
            if error is None:
                future.set_result(response)
            else:
                future.set_exception(storage_errors.for_user(error))

        if gate is None or gate.done():
            settle()
        else:
            gate.add_done_callback(settle)

    def _fail_delivery(self, delivery: Delivery, error: Exception) -> None:
        if delivery.future is not None and not delivery.future.done():
            delivery.future.set_exception(error)

    # -- committing a turn and releasing its output ---------------------------------------

    def _finish(self, turn: Turn) -> asyncio.Future[None] | None:
        """Hand the turn's events to the log; queue its output behind the commit."""
        gate: asyncio.Future[None] | None = None
        committing = bool(turn.events or turn.consumed_inbox)
        if committing:
            first_seq = self._seq
            self._seq += len(turn.events)
            snap = None
            every = self.host.settings.snapshot_every
            if turn.events and self._seq // every > first_seq // every:
                snap = (self._seq, snapshot.encode(self.state))
                self._snapshot_seq = self._seq
            commit = asyncio.ensure_future(
                self.host.event_log.append(
                    Append(
                        self.key,
                        self._epoch,
                        first_seq,
                        turn.events,  # the turn is over: its lists are not changed again
                        snap,
                        turn.consumed_inbox,
                    )
                )
            )
            self._pending.add(commit)
            commit.add_done_callback(functools.partial(self._committed, turn=turn))
            gate = self._last_commit = commit
        elif self._last_commit is not None and not self._last_commit.done():
            gate = self._last_commit
        delivery = turn.delivery
        # A socket's delivery is redone if its turn's gate fails, whether or not the turn
        # wrote anything: what it did was decided on state that is then rolled back.
        redo = delivery if delivery is not None and delivery.kind in SOCKET_KINDS else None
        if turn.outputs or turn.accepted or (redo is not None and gate is not None):
            outputs = turn.outputs
            if turn.accepted:
                outputs = [("expect", sid, hib) for sid, hib in turn.accepted] + outputs
            self._held.append((gate, outputs, redo))
            # A gate of this turn's own commit pumps from _committed (one callback, not two).
            if gate is not None and not gate.done() and not committing:
                gate.add_done_callback(lambda _f: self._pump())
            self._pump()
        return gate

    def _committed(self, commit: asyncio.Future[None], *, turn: Turn) -> None:
        self._pending.discard(commit)
        error = commit.exception() if not commit.cancelled() else ObjectResetError("cancelled")
        if error is None:
            for inbox_id in turn.consumed_inbox:
                self._seen_inbox.discard(inbox_id)
            if turn.alarm_changed:
                self.host.alarms.schedule(self.key, self.state.alarm_ms)
        else:
            if isinstance(error, CommitRefusedError) and turn.delivery is not None:
                # Only a refusal counts against a delivery: an outage or another writer is
                # no fault of its own, and it is retried for as long as that lasts.
                turn.delivery.attempts += 1
            self.reset(f"a commit failed: {error}")
        if self._held:
            self._pump()

    def _pump(self) -> None:
        """Release held output in turn order, as far as the commits behind it have landed.

        A turn whose gate failed has its output dropped and its delivery kept for redoing;
        gates fail in order (each append expects the one before it), so no committed
        turn's output is ever dropped, and none is released before an earlier turn's.
        """
        transport = self.host.transport
        while self._held:
            gate, outputs, redo = self._held[0]
            if gate is not None and not gate.done():
                return
            self._held.popleft()
            if gate is not None and (gate.cancelled() or gate.exception() is not None):
                if redo is not None:
                    self._redo.append(redo)
                continue
            for kind, socket_id, payload in outputs:
                if kind == "send":
                    transport.send(socket_id, payload)  # type: ignore[arg-type]
                elif kind == "close":
                    code, reason = cast(tuple[int | None, str], payload)
                    transport.close(socket_id, code, reason)
                else:
                    transport.expect(socket_id, self.key, self.binding, bool(payload))

    # -- ObjectCore ---------------------------------------------------------------------

    def record(self, event: types.Event) -> None:
        if self.status in ("closing", "closed"):
            raise ObjectResetError("This Durable Object was reset; its writes are refused.")
        turn = self._turn
        if turn is None:
            # Work outside a delivery (a background task): commit it as a turn of its own.
            turn = self._turn = Turn()
            asyncio.get_running_loop().call_soon(self._finish_orphan, turn)
        turn.undos.append(undo_of(self.state, event))
        apply(self.state, event)
        turn.events.append(event)
        kind = event.type  # cheaper than isinstance on pydantic models (ABCMeta)
        if kind in _ALARM_TYPES:
            turn.alarm_changed = True
        elif kind == "auto_response_set":
            self.host.transport.set_auto_response(self.key, self.state.auto_response)
        elif kind == "websocket_accepted":
            assert isinstance(event, types.WebSocketAccepted)
            turn.accepted.append((event.socket_id, event.hibernatable))

    def _finish_orphan(self, turn: Turn) -> None:
        if self._turn is turn:
            self._turn = None
        if self.status == "running" or self.status == "loading":
            self._finish(turn)

    def send(self, socket_id: str, data: str | bytes) -> None:
        self._output(("send", socket_id, data))

    def close_socket(self, socket_id: str, code: int | None, reason: str) -> None:
        self._output(("close", socket_id, (code, reason)))

    def _output(self, output: Output) -> None:
        if self._turn is not None:
            self._turn.outputs.append(output)
            return
        gate = self._last_commit if self._last_commit and not self._last_commit.done() else None
        self._held.append((gate, [output], None))
        if gate is not None:
            gate.add_done_callback(lambda _f: self._pump())
        self._pump()

    def auto_response_timestamp(self, socket_id: str) -> datetime | None:
        return self.host.transport.auto_response_timestamp(socket_id)

    def savepoint(self) -> int:
        turn = self._require_turn()
        return len(turn.events)

    def rollback_to(self, mark: int) -> None:
        turn = self._require_turn()
        rollback(self.state, turn, mark)

    def _require_turn(self) -> Turn:
        if self._turn is None:
            self._turn = Turn()
            asyncio.get_running_loop().call_soon(self._finish_orphan, self._turn)
        return self._turn

    async def sync(self) -> None:
        # Writes of the running turn commit when it ends; this waits for all earlier ones.
        pending = list(self._pending)
        if pending:
            results = await asyncio.gather(*pending, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise storage_errors.for_user(result)

    def abort(self, reason: str | None) -> NoReturn:
        raise ResetRequested(reason or "Application called abort() to reset Durable Object.")

    def block_concurrency_while(
        self, callback: Callable[[], Awaitable[Any]]
    ) -> asyncio.Future[Any]:
        if self._block_depth >= self.limits.max_block_concurrency_depth:
            raise ObjectResetError("blockConcurrencyWhile() calls are nested too deeply.")
        future = asyncio.ensure_future(self._blocked(callback))
        self._blockers.append(future)
        return future

    async def _blocked(self, callback: Callable[[], Awaitable[Any]]) -> Any:
        self._block_depth += 1
        try:
            return await asyncio.wait_for(_call(callback), self.limits.block_concurrency_timeout)
        except TimeoutError:
            message = (
                "A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
                "The call was canceled and the Durable Object was reset."
            )
            self.reset(message)
            raise ObjectResetError(message) from None
        except ResetRequested as reset:
            self.reset(reset.reason)
            raise ObjectResetError(reset.reason) from None
        except Exception as error:
            self.reset(f"blockConcurrencyWhile() callback failed: {error!r}")
            raise
        finally:
            self._block_depth -= 1

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        self._background.spawn(awaitable)

    @property
    def alarms(self) -> AlarmScheduler:
        return self.host.alarms

    @property
    def label(self) -> str:
        """``BINDING/name`` (or the binding alone for an unnamed object), for log lines."""
        name = self.object_id.name
        return f"{self.binding}/{name}" if name is not None else self.binding

    def log_extra(self, action: str = "activation") -> dict[str, str]:
        """The ``extra`` of a log line about this object: its label, its id, the action."""
        return {"object": self.label, "object_id": self.key, "action": action}


async def _call(callback: Callable[[], Any]) -> Any:
    result = callback()
    if inspect.isawaitable(result):
        result = await result
    return result


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen (its error, if any, was superseded by another)."""
    if not future.cancelled():
        future.exception()
