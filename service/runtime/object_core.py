"""A live object's turns, and the calls its API makes into the runtime (the ObjectCore).

A turn is one run of user code: the constructor, the handler of one delivery, or work done
outside any delivery (a background task's writes, committed as a turn of their own). What
a turn records is applied to the state at once and, when the turn ends, handed to the
event log as one append, without waiting for the commit (writes are pipelined and
batched); its socket output is held by the output gate until that commit lands. A failed
commit resets the object; a fetch's response is settled only once its turn's gate has.

Output for a socket another node holds is not held here: it goes into the turn's append,
and the flush writes it to the outbox in the same transaction as the turn's events (so the
gate holds across nodes, and a fenced former owner sends nothing). A socket is this node's
if the gateway holds it or this activation accepted it (its accept is still on its way to
the gateway, in the output of a turn not yet released), unless the accept answered a request
routed from another node: that node holds the socket, and the turn's reply (ahead of the
turn's frames in its commit) announces it there (``replies``).

What a turn's code logs (``object_logs``) goes into its append too, with the seq that append
ends at: a turn that logs and records nothing still commits, so its lines are kept, and a
frame a client got implies the lines of the turn that sent it are durable.

``Core`` is the base of ``service.runtime.activation.Activation``, which adds the object's
lifecycle (claim, replay, hibernate, reset) and implements ``reset``.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, NoReturn, Protocol

from service.api import core as core_module
from service.api.context import DurableObjectState
from service.api.durable_object import DurableObject
from service.api.errors import ObjectResetError
from service.api.http import Response
from service.api.ids import DurableObjectId
from service.api.limits import Limits
from service.api.namespace import Env
from service.api.rpc import Outcome
from service.api.websocket import WebSocket
from service.events import snapshot, types
from service.events.fold import ObjectState, apply, undo_of
from service.ports.auto_responses import AutoResponses
from service.ports.errors import CommitRefusedError
from service.ports.event_log import PublishedLog
from service.ports.records import Append, LogLine, RemoteOutput
from service.ports.socket_output import SocketOutput
from service.runtime import dispatch, object_logs, remote_outputs, replies, storage_errors
from service.runtime.alarms import AlarmScheduler
from service.runtime.delivery import Delivery
from service.runtime.mailbox import Mailbox
from service.runtime.operator_turns import OperatorOutcome
from service.runtime.output_gate import OutputGate
from service.runtime.replies import Replies
from service.runtime.turn import Output, ResetRequested, Resume, Turn, rollback
from service.tasks import BackgroundTasks

log = logging.getLogger(__name__)

#: Event types after whose commit the object's alarm timer must be re-armed.
_ALARM_TYPES = frozenset(
    {"alarm_set", "alarm_deleted", "storage_cleared", "storage_restored", "object_forked"}
)


class TurnLog(PublishedLog, Protocol):
    """Where finished turns go, and where resumes read the messages their sockets missed:
    the object's event log (``ports.event_log.EventLog``)."""

    def append(self, append: Append) -> Awaitable[None]: ...

    async def seq_at(self, object_id: str, at: datetime) -> int:
        """The object's last seq recorded at or before ``at`` (0: none)."""


class Core(abc.ABC):
    """The object's state, its current turn and the commits of its turns."""

    def __init__(
        self,
        object_id: DurableObjectId,
        binding: str | None,
        *,
        event_log: TurnLog,
        output: SocketOutput,
        auto_responses: AutoResponses,
        alarms: AlarmScheduler,
        limits: Limits,
        snapshot_every: int,
        max_attempts: int,
        inbox_attempts: Mapping[int, int],
        callers: Replies | None = None,
        log_bytes_per_turn: int = object_logs.DEFAULT_LIMIT,
    ) -> None:
        self.object_id = object_id
        self.key = str(object_id)
        #: Known once the object is claimed (a wake by id learns it from the catalog).
        self.binding = binding or ""
        self.cls: type[DurableObject] = DurableObject
        self.limits = limits
        self.state = ObjectState()
        self.handles: dict[str, WebSocket] = {}
        self.in_constructor = False
        self.has_alarm_handler = False
        self.current_url: str | None = None
        #: Objects waiting for the RPC call this object handles now to return.
        self.call_waiting: tuple[str, ...] = ()
        self.instance: DurableObject | None = None
        #: loading -> running -> closing -> closed
        self.status = "loading"
        #: Owner epoch of the claim; seq of the last event handed to the log; seq of the
        #: newest snapshot handed to it.
        self.epoch = 0
        self.seq = 0
        self.snapshot_seq = 0
        self._turn_log = event_log
        #: Also the lifecycle's (``Activation``): it restores the auto-response on a wake.
        self._auto_responses = auto_responses
        self._alarms = alarms
        self._snapshot_every = snapshot_every
        self._turn: Turn | None = None
        self._output_port = output
        #: Sockets this activation accepted, open: held here, whether or not the gateway
        #: knows them yet.
        self._accepted_here: set[str] = set()
        #: This node's callers waiting for replies (a request routed back to this node
        #: settles its caller here).
        self._callers = callers or Replies("")
        #: While a request routed from another node runs: that node, which holds the sockets
        #: it accepts.
        self._accepting_for: str | None = None
        self.gate = OutputGate(self, output, event_log)
        self.mailbox = Mailbox(
            self, limits, max_attempts=max_attempts, inbox_attempts=inbox_attempts
        )
        #: What wait_until() keeps the object awake for.
        self.background = BackgroundTasks(log)
        #: Most bytes of log messages a turn keeps.
        self._log_bytes = log_bytes_per_turn
        #: The loop the turns run on (a line logged on another thread after its turn is
        #: handed over to it); known once the first turn starts.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Where a turn's lines go once it has ended (bound once, not once per turn).
        self._after_turn = self._log_after_turn

    @abc.abstractmethod
    def reset(self, reason: str) -> None:
        """Throw the instance away; unfinished work is redone by the next one."""

    @abc.abstractmethod
    async def state_at(self, seq: int) -> ObjectState:
        """The object's state after its event ``seq``, rebuilt by the one replay (the state
        an operator's restore goes back to)."""

    # -- turns --------------------------------------------------------------------------

    def construct(self, env: Env) -> None:
        """Run the user's constructor, as a turn of its own."""
        turn = self._turn = Turn(logs=self._turn_logs())
        token = core_module.current_core.set(self)
        capture = object_logs.CAPTURE.set(turn.logs)
        self.in_constructor = True
        try:
            ctx = DurableObjectState(self)
            self.instance = self.cls(ctx, env)
        finally:
            self.in_constructor = False
            object_logs.CAPTURE.reset(capture)
            core_module.current_core.reset(token)
            self._turn = None
        self._finish(turn)

    async def run_turn(self, delivery: Delivery) -> None:
        """Run the handler of one delivery as a turn; settle a fetch (or an rpc call) once
        it is committed, or reply to the node it was routed from in the same commit."""
        if delivery.reply_to is not None and delivery.reply_to == self._callers.node_id:
            # Routed by this node to an owner that let the object go before reading it: the
            # caller waits here.
            delivery.reply_to, delivery.future = None, self._callers.take(delivery.request_id)
        routed = delivery.reply_to is not None
        turn = self._turn = Turn(delivery, logs=self._turn_logs())
        if delivery.inbox_id is not None:
            turn.consumed_inbox.append(delivery.inbox_id)
        if routed and delivery.kind == "fetch":
            self._accepting_for = delivery.reply_to
        token = core_module.current_core.set(self)
        capture = object_logs.CAPTURE.set(turn.logs)
        result: Response | Outcome | OperatorOutcome | None = None
        try:
            result = await dispatch.run(self, delivery, turn)
        except ResetRequested as reset:
            self._turn = None
            object_logs.CAPTURE.reset(capture)
            core_module.current_core.reset(token)
            delivery.fail(ObjectResetError(reset.reason))
            self._answer_reset(delivery, turn, reset.reason)
            self.reset(reset.reason)
            return
        finally:
            self._accepting_for = None
            if self._turn is turn:
                self._turn = None
                object_logs.CAPTURE.reset(capture)
                core_module.current_core.reset(token)
        answer = replies.answer(delivery, result, self._socket_details) if routed else None
        gate = self._finish(turn, answer)
        if delivery.future is not None and result is not None:
            _respond(delivery.future, gate, result)
        elif delivery.kind == "drop":
            delivery.fail(ObjectResetError(replies.DROPPED))
        if isinstance(result, OperatorOutcome) and result.rebuild is not None:
            # A restore: the object is rebuilt on the restored state (its commit is already
            # handed to the log, and the reset lets it land before the object goes).
            self.reset(result.rebuild)

    def _answer_reset(self, delivery: Delivery, turn: Turn, reason: str) -> None:
        """A turn reset the object: what its code logged up to then is kept (nothing else of
        it is). A request or call from the inbox is, as one made here, answered with the
        reset and not run again, so its row is consumed with those lines and the reply to
        the node it came from, if another."""
        lines = turn.logs.close() if turn.logs is not None else []
        if delivery.request_id is None or delivery.inbox_id is None:
            if lines:
                self._commit(Turn(), [], logs=lines)
            return
        outbox = [replies.reply(delivery, replies.of_failure(reason))] if delivery.reply_to else []
        # The row may be consumed already (``commit_so_far``): the reply still goes.
        if outbox or turn.consumed_inbox or lines:
            self._commit(Turn(consumed_inbox=turn.consumed_inbox), [], outbox, lines)

    def _socket_details(self, socket_id: str) -> dict[str, Any] | None:
        """What the node holding a socket accepted here needs to know of it."""
        socket = self.state.sockets.get(socket_id)
        if socket is None:
            return None
        pair = self.state.auto_response
        return {
            "id": socket_id,
            "object_id": self.key,
            "binding": self.binding,
            "hibernatable": socket.hibernatable,
            "auto_response": None if pair is None else list(pair),
        }

    def _finish(self, turn: Turn, reply: RemoteOutput | None = None) -> asyncio.Future[None] | None:
        """Hand the turn's events (and its output for other nodes' sockets, after its reply
        to the node it was routed from, if any) to the log; queue its output for this
        node's sockets behind the commit."""
        if turn.auto_response_changed:
            self._announce_auto_response(turn)
        # The turn is over: its lists are not changed again, and go to the log as they are.
        events = turn.events[turn.committed :] if turn.committed else turn.events
        outbox = self._outbox_of(turn) if turn.outputs else None
        if reply is not None:
            outbox = [reply, *outbox] if outbox else [reply]
        lines = turn.logs.close() if turn.logs is not None else None
        committing = bool(events or turn.consumed_inbox or outbox or lines)
        gate = self._commit(turn, events, outbox, lines) if committing else self.gate.last_pending()
        self.gate.hold(turn, gate, committing=committing)
        return gate

    def _announce_auto_response(self, turn: Turn) -> None:
        """The pair changed: every node holding a socket of this object answers its
        auto-responses itself, so each such socket's row tells its node the new pair (ahead
        of the turn's frames). This node's registry has it already (``record``)."""
        pair = self.state.auto_response
        elsewhere = [s for s in self.state.sockets if not self._here(s)]
        if elsewhere:
            turn.outputs[:0] = [("auto_response", socket_id, pair) for socket_id in elsewhere]

    def _outbox_of(self, turn: Turn) -> list[RemoteOutput] | None:
        """Take the turn's output for sockets other nodes hold out of it, as outbox rows."""
        return remote_outputs.take(turn, self.key, self._here)

    def _here(self, socket_id: str) -> bool:
        """Whether this node holds the socket (or will: this activation accepted it)."""
        return socket_id in self._accepted_here or self._output_port.holds(socket_id)

    def _commit(
        self,
        turn: Turn,
        events: list[types.Event],
        outbox: list[RemoteOutput] | None = None,
        logs: list[LogLine] | None = None,
    ) -> asyncio.Future[None]:
        """Append ``events`` (the state is already past them) with the turn's inbox rows,
        its output for other nodes' sockets and what it logged."""
        first_seq = self.seq
        self.seq += len(events)
        snap = None
        every = self._snapshot_every
        if events and self.seq // every > first_seq // every:
            snap = (self.seq, snapshot.encode(self.state))
            self.snapshot_seq = self.seq
        commit = asyncio.ensure_future(
            self._turn_log.append(
                Append(
                    self.key,
                    self.epoch,
                    first_seq,
                    events,
                    snap,
                    turn.consumed_inbox,
                    outbox or [],
                    logs or [],
                )
            )
        )
        self.gate.track(commit)
        commit.add_done_callback(functools.partial(self._committed, turn=turn))
        return commit

    async def commit_so_far(self) -> None:
        """Commit what the running turn has recorded so far, now, and wait until it is.

        The events go to the log as a commit of their own (with the inbox row of the
        delivery, if any), ahead of the rest of the turn; from then on no rollback takes
        them back, and the delivery counts as recorded (it is not handled again if a later
        commit of the turn fails). The turn's output still waits for the turn's end.
        """
        turn = self._require_turn()
        events = turn.events[turn.committed :]
        if not events and not turn.consumed_inbox:
            await self.gate.sync()
            return
        part = Turn(
            turn.delivery,
            events=events,
            consumed_inbox=turn.consumed_inbox,
            alarm_changed=turn.alarm_changed,
        )
        turn.committed = turn.kept = len(turn.events)
        turn.consumed_inbox, turn.alarm_changed = [], False
        commit = self._commit(part, events)
        # Nothing to release; if the commit fails, the delivery is handled again.
        self.gate.hold(part, commit, committing=True)
        try:
            await asyncio.shield(commit)
        except Exception as error:
            raise storage_errors.for_user(error) from error
        turn.delivery = None

    def _committed(self, commit: asyncio.Future[None], *, turn: Turn) -> None:
        self.gate.settled(commit)
        error = commit.exception() if not commit.cancelled() else ObjectResetError("cancelled")
        if error is None:
            self.mailbox.consumed(turn.consumed_inbox)
            if turn.alarm_changed:
                self._alarms.schedule(self.key, self.state.alarm_ms)
        else:
            if isinstance(error, CommitRefusedError) and turn.delivery is not None:
                # Only a refusal counts against a delivery: an outage or another writer is
                # no fault of its own, and it is retried for as long as that lasts.
                turn.delivery.attempts += 1
            self.reset(f"a commit failed: {error}")
        if self.gate.holding:
            self.gate.pump()

    def _finish_orphan(self, turn: Turn) -> None:
        if self._turn is turn:
            self._turn = None
        if self.status == "running" or self.status == "loading":
            self._finish(turn)

    def _require_turn(self) -> Turn:
        if self._turn is None:
            self._turn = Turn()
            asyncio.get_running_loop().call_soon(self._finish_orphan, self._turn)
        return self._turn

    def _turn_logs(self) -> object_logs.TurnLogs:
        """The lines of a turn about to run."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return object_logs.TurnLogs(self.key, self._log_bytes, self._after_turn)

    def _log_after_turn(self, line: LogLine, size: int) -> None:
        """A line logged after its turn ended (by a task the turn started): it goes with the
        turn running now, or a turn of its own, as that task's writes do."""
        loop = self._loop
        if loop is not None and not object_logs.on_loop(loop):
            loop.call_soon_threadsafe(self._log_after_turn, line, size)
            return
        if self.status not in ("loading", "running"):
            return  # the object is leaving memory: no turn of it will commit again
        turn = self._require_turn()
        if turn.logs is None:
            turn.logs = self._turn_logs()
        turn.logs.add(line, size)

    # -- ObjectCore ---------------------------------------------------------------------

    def new_socket_id(self) -> str:
        return uuid.uuid4().hex

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
            self._auto_responses.set_auto_response(self.key, self.state.auto_response)
            turn.auto_response_changed = True
        elif kind == "websocket_accepted":
            assert isinstance(event, types.WebSocketAccepted)
            if self._accepting_for is None:
                turn.accepted.append((event.socket_id, event.hibernatable))
                self._accepted_here.add(event.socket_id)
            # else: held by the node the request came from; the reply announces it there.
        elif kind == "websocket_closed" or kind == "websocket_error":
            self._accepted_here.discard(event.socket_id)  # type: ignore[union-attr]

    def send(self, socket_id: str, data: str | bytes) -> None:
        self._output(("send", socket_id, data))

    def close_socket(self, socket_id: str, code: int | None, reason: str) -> None:
        self._output(("close", socket_id, (code, reason)))

    def publish(
        self, event: types.MessagePublished, frame: str | bytes, socket_ids: list[str]
    ) -> int:
        self.record(event)
        turn = self._turn
        assert turn is not None  # record() made one if there was none
        # Tagged with the turn's event count: a rollback below it drops the frames too.
        payload = (frame, len(turn.events))
        turn.outputs.extend(("publish", socket_id, payload) for socket_id in socket_ids)
        return self.state.seq

    def resume(self, socket_id: str, after: int, last_seq: int) -> None:
        socket = self.state.sockets[socket_id]
        limit = self.limits.max_resume_messages
        self._output(("resume", socket_id, Resume(after, last_seq, socket.tags, limit)))

    def _output(self, output: Output) -> None:
        if self._turn is not None:
            self._turn.outputs.append(output)
            return
        socket_id = output[1]
        if output[0] != "resume" and not self._here(socket_id):
            # Another node's socket: its frame goes out with a commit, as a turn of its own.
            self._require_turn().outputs.append(output)
            return
        self.gate.hold_output(output)

    def auto_response_timestamp(self, socket_id: str) -> datetime | None:
        return self._auto_responses.auto_response_timestamp(socket_id)

    def savepoint(self) -> int:
        turn = self._require_turn()
        return len(turn.events)

    def rollback_to(self, mark: int) -> None:
        turn = self._require_turn()
        rollback(self.state, turn, mark)

    async def sync(self) -> None:
        # Writes of the running turn commit when it ends; this waits for all earlier ones.
        await self.gate.sync()

    def abort(self, reason: str | None) -> NoReturn:
        raise ResetRequested(reason or "Application called abort() to reset Durable Object.")

    def block_concurrency_while(
        self, callback: Callable[[], Awaitable[Any]]
    ) -> asyncio.Future[Any]:
        return self.mailbox.block_while(callback)

    async def seq_at_time(self, at: datetime) -> int:
        return await self._turn_log.seq_at(self.key, at)

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        self.background.spawn(awaitable)

    @property
    def alarms(self) -> AlarmScheduler:
        return self._alarms

    @property
    def label(self) -> str:
        """``BINDING/name`` (or the binding alone for an unnamed object), for log lines."""
        name = self.object_id.name
        return f"{self.binding}/{name}" if name is not None else self.binding

    def log_extra(self, action: str = "activation") -> dict[str, str]:
        """The ``extra`` of a log line about this object: its label, its id, the action."""
        return {"object": self.label, "object_id": self.key, "action": action}


def _respond(
    future: asyncio.Future[Any],
    gate: asyncio.Future[None] | None,
    response: Response | Outcome | OperatorOutcome,
) -> None:
    """Settle a fetch with its response (an rpc call or an operator's action with its
    outcome) once its turn's gate has landed, or with the error."""

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
