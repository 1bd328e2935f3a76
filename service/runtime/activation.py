"""One live object's lifecycle: claim, replay, construct, run, then hibernate or reset.

An activation is built in three parts, one module each: its turns and the API's calls
(``object_core``), the mailbox that runs its deliveries (``mailbox``) and the output gate
that holds its socket output until commits land (``output_gate``). This module brings
them to life and takes them down:

- loading claims the object, replays its log (``service.history.replay``) while it reads
  its inbox and delivers the node's outbox (what a previous owner elsewhere sent this
  node's sockets reaches them before anything this activation sends), does the restore the
  log asks for if any (``storage_restored``), runs the constructor, and only then runs
  deliveries, the inbox's first;
- hibernating snapshots the state, releases ownership and leaves memory; the sockets stay
  open in the gateway;
- a reset throws the instance away once the commits in flight have settled: output of those
  that landed is still released, in order, and what was not done (the socket deliveries of
  failed turns, then the mailbox) is given back to the node for the next activation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from service.api.durable_object import DurableObject
from service.api.errors import ObjectResetError
from service.api.ids import DurableObjectId
from service.api.limits import Limits
from service.api.namespace import Env
from service.events import bookmarks, fold, snapshot
from service.events.fold import ObjectState
from service.history import replay
from service.metrics import Metrics
from service.ports.auto_responses import AutoResponses
from service.ports.errors import ConflictError
from service.ports.event_log import ObjectLog
from service.ports.records import Append, Claim, InboxItem
from service.ports.socket_output import SocketOutput
from service.runtime.alarms import AlarmScheduler
from service.runtime.delivery import Delivery
from service.runtime.node_settings import NodeSettings
from service.runtime.object_core import Core
from service.runtime.replies import Replies
from service.runtime.turn import Turn
from service.tasks import BackgroundTasks

log = logging.getLogger(__name__)


class Host(Protocol):
    """The node, as one of its activations sees it."""

    async def inbox_settled(self, object_id: str) -> None:
        """Wait until inbox writes already made for this object are committed."""

    async def outbox_caught_up(self) -> None:
        """Wait until this node's outbox rows committed so far are delivered."""

    def gone(self, activation: Activation, undelivered: list[Delivery]) -> None:
        """The activation left memory; ``undelivered`` goes to the next one."""


class Bindings(Protocol):
    """The application as the node serves it: a class per binding, and the ``env``."""

    @property
    def env(self) -> Env: ...

    def class_of(self, binding: str) -> type[DurableObject] | None: ...


@dataclass(frozen=True, slots=True)
class Services:
    """What the node lends each of its activations, one narrow interface per need.

    The lifecycle uses the host, the bindings, the log, the auto-responses (restored on a
    wake), the metrics and the tasks; the turns (``Core``) append to the log, arm alarms
    and set auto-responses; the output gate sees the socket output alone, the mailbox the
    limits and the inbox's failed attempts.
    """

    host: Host
    bindings: Bindings
    event_log: ObjectLog
    output: SocketOutput
    auto_responses: AutoResponses
    alarms: AlarmScheduler
    limits: Limits
    settings: NodeSettings
    #: Failed commits per inbox row, across activations of the node.
    inbox_attempts: Mapping[int, int]
    metrics: Metrics
    #: Where a reset's unwinding runs (the node waits for it when it stops).
    tasks: BackgroundTasks
    #: The node's callers waiting for replies from other nodes.
    callers: Replies


class Activation(Core):
    """A live instance of one object on this node (the runtime's ObjectCore)."""

    def __init__(self, services: Services, object_id: DurableObjectId, binding: str | None) -> None:
        super().__init__(
            object_id,
            binding,
            event_log=services.event_log,
            output=services.output,
            auto_responses=services.auto_responses,
            alarms=services.alarms,
            limits=services.limits,
            snapshot_every=services.settings.snapshot_every,
            max_attempts=services.settings.max_attempts,
            inbox_attempts=services.inbox_attempts,
            callers=services.callers,
            log_bytes_per_turn=services.settings.log_bytes_per_turn,
        )
        self._host = services.host
        self._bindings = services.bindings
        self._event_log = services.event_log
        self._metrics = services.metrics
        self._tasks = services.tasks
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner: asyncio.Task[None] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    @property
    def accepting(self) -> bool:
        return self.status in ("loading", "running")

    @property
    def busy(self) -> bool:
        """Whether a turn is running."""
        return self.mailbox.busy

    # -- loading ------------------------------------------------------------------------

    async def load(self, name: str | None, *, existing: bool) -> None:
        """Claim the object, replay its log, run the constructor, then take its inbox."""
        log_ = self._event_log
        started = time.perf_counter()
        if existing:
            claim = await log_.claim_existing(self.key)
            if claim is None:
                raise LookupError(f"object {self.key} does not exist")
        else:
            claim = await log_.claim(self.key, self.binding, name)
        cls = self._bindings.class_of(claim.binding)
        if cls is None:
            raise LookupError(f"object {self.key} is of binding {claim.binding!r}, not served here")
        self.binding, self.cls = claim.binding, cls
        self.has_alarm_handler = callable(getattr(cls, "alarm", None))
        if claim.name is not None and self.object_id.name is None:
            self.object_id.name = claim.name
        self.epoch = claim.epoch
        # The inbox is read on another connection while the log is replayed; so is the
        # node's outbox, which holds whatever the previous owner (if another node) committed
        # for this node's sockets before this claim: it goes out before this one's output.
        inbox = asyncio.ensure_future(self._read_inbox())
        outbox = asyncio.ensure_future(self._host.outbox_caught_up())
        try:
            replayed = await self._replay(claim)
        except BaseException:
            for read in (inbox, outbox):
                read.cancel()
                read.add_done_callback(_retrieve)
            raise
        self.mailbox.queue_inbox(await inbox, first=True)
        await outbox
        if self.status != "loading":
            raise ObjectResetError("the object was reset while it was loading")
        self.status = "running"
        self.ready.set_result(None)
        self._runner = asyncio.create_task(self.mailbox.run(), name=f"object-{self.key[:12]}")
        elapsed = time.perf_counter() - started
        self._metrics.wake_seconds.observe(elapsed)
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
        replayed = await replay.state(self._event_log, self.key, until_seq=claim.last_seq)
        state = replayed.state
        if state.seq != claim.last_seq:
            raise ConflictError(
                f"object {self.key}: replay reached seq {state.seq}, the catalog says "
                f"{claim.last_seq}"
            )
        self.state = state
        self.seq = state.seq
        self.snapshot_seq = replayed.snapshot_seq
        self._auto_responses.set_auto_response(self.key, state.auto_response)
        if state.pending_restore is not None:
            await self._restore(state.pending_restore)
        self.construct(self._bindings.env)
        return replayed.events

    async def _restore(self, bookmark: str) -> None:
        """Do the restore the log asks for, before the constructor runs: the state at
        ``bookmark``, rebuilt by the one replay, appended as a ``storage_restored`` event
        (a commit of its own, ahead of the constructor's; history is never rewritten)."""
        target = await self.state_at(bookmarks.to_seq(bookmark))
        turn = self._turn = Turn()
        try:
            self.record(fold.restore_to(target))
        finally:
            self._turn = None
        self._finish(turn)
        log.info(
            "restored storage to bookmark %s (%d keys)",
            bookmark,
            len(target.storage),
            extra=self.log_extra("restore"),
        )

    async def state_at(self, seq: int) -> ObjectState:
        # Writes are pipelined: the events up to ``seq`` may still be on their way.
        await self.gate.sync()
        target = (await replay.state(self._event_log, self.key, until_seq=seq)).state
        if target.seq != seq:
            raise ConflictError(f"object {self.key}: replaying to seq {seq} reached {target.seq}")
        return target

    async def take_inbox(self) -> None:
        """Queue this object's inbox rows not seen yet, after the work already queued."""
        self.mailbox.queue_inbox(await self._read_inbox(), first=False)

    def inbox_read_begins(self) -> None:
        """A read of this object's inbox with others' begins (``Node._take_inboxes``): as
        for ``_read_inbox``, rows consumed from now on are not queued again by it."""
        self.mailbox.reading_inbox()

    def inbox_read_ends(self, items: list[InboxItem] | None) -> None:
        """That read ended: queue its rows not seen yet, or nothing (None: it failed, or the
        object changed meanwhile)."""
        if items is None:
            self.mailbox.inbox_read_failed()
        else:
            self.mailbox.queue_inbox(items, first=False)

    async def _read_inbox(self) -> list[InboxItem]:
        """The object's inbox rows; the caller hands them to ``mailbox.queue_inbox``."""
        self.mailbox.reading_inbox()
        try:
            await self._host.inbox_settled(self.key)
            return await self._event_log.inbox(self.key)
        except BaseException:
            self.mailbox.inbox_read_failed()
            raise

    def fail_load(self, error: BaseException) -> None:
        """Loading failed: leave the registry; work that arrived meanwhile is carried over."""
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved: waiters re-raise it themselves
        self.status = "closed"
        waiting = self.mailbox.take_all()
        self._host.gone(self, waiting)
        if not self.closed.done():
            self.closed.set_result(None)

    # -- running ------------------------------------------------------------------------

    def has_work(self) -> bool:
        gate, mailbox = self.gate, self.mailbox
        return bool(mailbox.queued or gate.pending or gate.holding or mailbox.blocked)

    def enqueue(self, delivery: Delivery) -> None:
        self.mailbox.enqueue(delivery)

    def can_hibernate(self, now: float, idle_after: float) -> bool:
        gate, mailbox = self.gate, self.mailbox
        return (
            self.status == "running"
            and not mailbox.busy
            and not mailbox.queued
            and not gate.pending
            and not gate.holding
            and not mailbox.blocked
            and not self.background
            and now - mailbox.last_active >= idle_after
            and all(s.hibernatable for s in self.state.sockets.values())
        )

    # -- leaving memory -----------------------------------------------------------------

    async def hibernate(self) -> None:
        """Leave memory: snapshot, release ownership; sockets stay open in the gateway."""
        self.status = "closing"
        await self._stop_runner()
        if self.seq > self.snapshot_seq:
            commit = self._event_log.append(
                Append(
                    self.key,
                    self.epoch,
                    self.seq,
                    snapshot=(self.seq, snapshot.encode(self.state)),
                )
            )
            try:
                await commit
            except Exception as error:
                log.warning("snapshot at hibernation failed: %s", error, extra=self.log_extra())
        with contextlib.suppress(Exception):
            await self._event_log.release(self.key, self.epoch)
        log.info(
            "hibernated at seq %d with %d sockets open",
            self.seq,
            len(self.state.sockets),
            extra=self.log_extra(),
        )
        if not self.state.sockets:
            # No socket can ask for the auto-response any more; the next wake sets it again.
            self._auto_responses.set_auto_response(self.key, None)
        self._close([])

    async def _stop_runner(self) -> None:
        runner = self._runner
        if runner is not None and runner is not asyncio.current_task():
            self.mailbox.wake()
            await runner

    def _close(self, undelivered: list[Delivery]) -> None:
        self.status = "closed"
        if not self.ready.done():
            self.ready.set_exception(ObjectResetError("the object was reset while loading"))
            self.ready.exception()
        self._host.gone(self, undelivered)
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
        self._tasks.spawn(self._finish_reset())

    async def _finish_reset(self) -> None:
        await self._stop_runner()
        await self.gate.settle()
        self.gate.pump()
        undelivered = [*self.gate.redo, *self.mailbox.take_all()]
        self.mailbox.cancel_blockers()
        self._close(undelivered)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen (its error, if any, was superseded by another)."""
    if not future.cancelled():
        future.exception()
