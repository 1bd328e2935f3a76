"""The scratch object: the user's class run exactly as a node runs it, on ports of its own.

It is the runtime's object core (``service.runtime.object_core.Core``, whose turns call
``service.runtime.dispatch`` as a live object's do), with every port it meets replaced by
one that keeps what it is given: the event log is a list in memory, socket output is
recorded instead of sent, auto-responses and alarm timers go nowhere, and stubs refuse to
call other objects. Nothing it does leaves the process.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.api import rpc, websocket
from service.api.application import Application
from service.api.durable_object import DurableObject
from service.api.errors import DurableObjectError
from service.api.http import Request, Response
from service.api.ids import DurableObjectId
from service.api.limits import Limits
from service.api.namespace import DurableObjectNamespace, Env
from service.events import fold
from service.events.fold import ObjectState
from service.events.types import Event, OperatorCloseSent
from service.ports.records import Append, PublishedMessage
from service.runtime.alarms import MAX_RETRIES, AlarmScheduler
from service.runtime.delivery import Delivery
from service.runtime.object_core import Core

#: Never reached: a scratch object takes no snapshots (nothing would read them).
_NO_SNAPSHOTS = 2**62


@dataclass(frozen=True, slots=True)
class Sent:
    """A frame or a close the scratch object would have sent, had it been live."""

    #: "send" or "close".
    kind: str
    socket_id: str
    #: The frame of a send.
    data: str | bytes | None = None
    #: The code and reason of a close.
    code: int | None = None
    reason: str = ""


@dataclass(slots=True)
class TurnResult:
    """What one turn of the scratch object did."""

    events: list[Event] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    #: The status of a fetch's response (None: not a fetch, or it failed).
    status: int | None = None
    #: Why the object was reset during the turn (an abort, an event timeout), if it was.
    reset: str | None = None
    #: The error of a constructor that raised.
    error: str | None = None


class _MemoryLog:
    """The event log of the scratch object: each turn's events, kept in memory."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, append: Append) -> Awaitable[None]:
        self.events.extend(append.events)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def published_between(
        self, object_id: str, after_seq: int, until_seq: int, tags: Sequence[str], limit: int
    ) -> list[PublishedMessage]:
        """A resume in a rerun replays nothing: its frames would go to no one, and sends
        are not compared."""
        return []

    async def seq_at(self, object_id: str, at: datetime) -> int:
        """``get_bookmark_for_time`` in a rerun: the scratch log keeps no times."""
        raise DurableObjectError(
            "get_bookmark_for_time() cannot be rerun: the scratch object keeps no record times"
        )


class _RecordedOutput:
    """Socket output, recorded instead of sent."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def expect(self, socket_id: str, object_id: str, binding: str, hibernatable: bool) -> None:
        pass  # no connection will ever be attached

    def send(self, socket_id: str, data: str | bytes) -> None:
        self.sent.append(Sent("send", socket_id, data=data))

    def close(self, socket_id: str, code: int | None, reason: str) -> None:
        self.sent.append(Sent("close", socket_id, code=code, reason=reason))

    def holds(self, socket_id: str) -> bool:
        return True  # every socket's output is recorded here


class _NoAutoResponses:
    """No socket is held, so no auto-response is ever answered."""

    def set_auto_response(self, object_id: str, pair: tuple[str, str] | None) -> None:
        pass

    def auto_response_timestamp(self, socket_id: str) -> datetime | None:
        return None


class RecordedAlarms(AlarmScheduler):
    """Alarm timers that never fire: the rerun delivers the recorded alarm runs itself, with
    the retry count each one had."""

    def __init__(self) -> None:  # no timers, no store: nothing of the base is used
        #: The retry count of the alarm run being delivered.
        self.retry = 0
        #: The backoff of a failed run in this turn (without the live run's jitter).
        self.backoff: float | None = None

    def schedule(self, object_id: str, scheduled_ms: int | None) -> None:
        pass

    def due(self, scheduled_ms: int, now_ms: int) -> bool:
        return True  # the log says it ran: whenever the rerun's code set it for

    def retry_count(self, object_id: str) -> int:
        return self.retry

    def succeeded(self, object_id: str) -> None:
        pass

    def failed(self, object_id: str) -> float | None:
        if self.retry >= MAX_RETRIES:
            return None
        self.backoff = float(2 << self.retry)
        return self.backoff

    async def poll(self, horizon_seconds: float) -> None:
        pass

    def close(self) -> None:
        pass


class _NoOtherObjects:
    """Stubs of a scratch object: calling another object is refused (and noted)."""

    def __init__(self, limits: Limits) -> None:
        self.refused: list[str] = []
        self.limits = limits

    async def call(self, binding: str, object_id: DurableObjectId, call: rpc.Call) -> rpc.Outcome:
        self.refused.append(f"{call.method}() of {binding} {object_id}")
        raise DurableObjectError(
            f"A rerun calls no other object: the stub's call of {call.method}() was refused."
        )

    async def fetch(self, binding: str, object_id: DurableObjectId, request: Request) -> Response:
        self.refused.append(f"{request.method} {request.url} to {binding} {object_id}")
        raise DurableObjectError("A rerun calls no other object: the stub's fetch() was refused.")


class _ScratchNamespace(DurableObjectNamespace):
    """A namespace whose new unique ids are noted: they are random, so the comparison may
    match them with the ones the log holds."""

    def __init__(self, binding: str, unique_key: str, host: _NoOtherObjects, fresh: set[str]):
        super().__init__(binding, unique_key, host)
        self._fresh = fresh

    def new_unique_id(self, *, jurisdiction: str | None = None) -> DurableObjectId:
        made = super().new_unique_id(jurisdiction=jurisdiction)
        self._fresh.add(str(made))
        return made


class ScratchObject(Core):
    """One object of the user's class, on a state handed to it, that reaches nobody."""

    def __init__(
        self,
        app: Application,
        object_id: DurableObjectId,
        binding: str,
        cls: type[DurableObject],
        state: ObjectState,
        limits: Limits,
    ) -> None:
        self._memory = _MemoryLog()
        self._recorder = _RecordedOutput()
        self.recorded_alarms = RecordedAlarms()
        super().__init__(
            object_id,
            binding,
            event_log=self._memory,
            output=self._recorder,
            auto_responses=_NoAutoResponses(),
            alarms=self.recorded_alarms,
            limits=limits,
            snapshot_every=_NO_SNAPSHOTS,
            max_attempts=1,
            inbox_attempts={},
        )
        self.cls = cls
        self.has_alarm_handler = callable(getattr(cls, "alarm", None))
        self.state = state
        self.seq = self.snapshot_seq = state.seq
        self.status = "running"
        #: Ids the scratch object made at random (sockets, unique object ids).
        self.fresh_ids: set[str] = set()
        #: Ids that the next WebSocketPairs take (the ones the log recorded), in order.
        self.socket_ids: deque[str] = deque()
        self.stubs = _NoOtherObjects(limits)
        #: Awaitables handed to ``ctx.wait_until``, which a rerun does not run.
        self.skipped_background = 0
        self._reset: str | None = None
        namespaces = {
            name: _ScratchNamespace(name, app.unique_keys[name], self.stubs, self.fresh_ids)
            for name in app.bindings
        }
        self.env = Env({**app.vars, **namespaces})

    # -- the runtime's hooks ------------------------------------------------------------

    def reset(self, reason: str) -> None:
        self._reset = reason

    async def state_at(self, seq: int) -> ObjectState:
        raise DurableObjectError(
            "A rerun runs no operator's restore: it takes the one the log holds as given."
        )

    def new_socket_id(self) -> str:
        if self.socket_ids:
            return self.socket_ids.popleft()
        made = uuid.uuid4().hex
        self.fresh_ids.add(made)
        return made

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        # Background work lands outside any inbound event's turn, at a time of its own:
        # a rerun does not run it (what it wrote live shows as unexplained events).
        self.skipped_background += 1
        if inspect.iscoroutine(awaitable):
            awaitable.close()

    # -- running ------------------------------------------------------------------------

    def take(self, event: Event) -> None:
        """Fold in an event the log holds and no handler wrote (a fork's first, a restore,
        an operator's close or frame): after a fork or a restore, the next
        ``construct_turn`` runs on the state it made, as the wake after it did."""
        fold.apply(self.state, event)
        self.seq = self.state.seq
        if isinstance(event, OperatorCloseSent):
            # As live: the object sees the socket closing from now on.
            handle = self.handles.get(event.socket_id)
            if handle is not None:
                websocket.close_started(handle)

    async def construct_turn(self) -> TurnResult:
        """Run the constructor (as a wake does), and what it blocks deliveries on."""
        result = TurnResult()
        try:
            self.construct(self.env)
        except Exception as error:
            result.error = f"{type(error).__name__}: {error}"
        else:
            await self.mailbox.unblocked()
        await self._settle()
        return self._collect(result)

    async def run(self, delivery: Delivery) -> TurnResult:
        """Run one delivery as a turn, as the node's mailbox would."""
        result = TurnResult()
        if self.mailbox.blocked:
            await self.mailbox.unblocked()
        if delivery.kind == "fetch" or delivery.kind == "rpc":
            delivery.future = asyncio.get_running_loop().create_future()
        await self.run_turn(delivery)
        future = delivery.future
        if (
            future is not None
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        ):
            answer = future.result()
            if isinstance(answer, Response):
                result.status = answer.status
        return self._collect(result)

    async def _settle(self) -> None:
        """Let the turns' commit callbacks (and the orphan turns of callbacks that ran
        outside a delivery) run, as the loop of a live node would between deliveries."""
        for _ in range(2):
            await asyncio.sleep(0)

    async def settle(self) -> None:
        await self._settle()

    def _collect(self, result: TurnResult) -> TurnResult:
        result.events, self._memory.events = self._memory.events, []
        result.sent, self._recorder.sent = self._recorder.sent, []
        result.reset, self._reset = self._reset, None
        self.socket_ids.clear()
        return result
