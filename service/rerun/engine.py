"""Rerunning an object's recorded inbound work against the current code of its class.

The state after seq ``start - 1`` is rebuilt by the one replay (through the history), the
class is constructed on it (as on a wake), and then every inbound event of the log from
``start`` to ``end`` (frames, closes, errors, requests, alarm runs) is delivered, in order,
to that scratch object (``scratch``), which runs it as the node would. What each turn
records is compared with what the log recorded for that turn (``compare``); the first
turn that differs is the divergence, and the rerun stops there, since from then on the two
no longer start from the same state.

Turns are told apart in the log by their inbound events: a frame, a request or an alarm run
is recorded first in its turn, a close or an error last (its socket stays listed while its
handler runs). An operator's events are taken as given: a fork or a restore is folded in
and the object constructed again (as the wake after it did), a socket's close or a frame
sent to it is folded in. Events that no inbound event explains (a constructor that writes
at every wake, a background task) show as a divergence of the turn before them.

An RPC call is one more inbound event that starts its turn (``rpc_called``); the
``rpc_returned`` that ends the turn is compared like any event, so a method that now returns
or raises something else is a divergence of its turn.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.api import rpc
from service.api.application import Application
from service.api.http import Request
from service.api.ids import DurableObjectId
from service.api.limits import Limits
from service.events import types, values
from service.ports.history import EventPage, HistoryService, LoggedEvent, ObjectInfo
from service.rerun.compare import TIME_TOLERANCE, Clocks, Matcher
from service.rerun.report import (
    ENDS_TURN,
    GIVEN,
    INBOUND,
    STARTS_TURN,
    WAKES,
    Divergence,
    Report,
    RerunError,
    describe,
    known,
)
from service.rerun.scratch import ScratchObject, TurnResult
from service.runtime.delivery import Delivery

#: Called as a rerun goes: (seqs of the range done, seqs in the range).
Progress = Callable[[int, int], None]

#: Events read from the log per page.
PAGE = 5_000

#: Recorded events kept for the report of a divergence, at most, per turn.
_TURN_SHOWN = 200

#: Events looked through, before a --from that cannot start a rerun, for one that can.
_LOOK_BACK = 1_000

#: Turns run between two passes of the event loop (for the turns' commit callbacks).
_SETTLE_EVERY = 64


@dataclass(slots=True)
class _Step:
    """One turn of the rerun: the inbound event it ran, where it starts in the log."""

    inbound: LoggedEvent | None
    first_seq: int
    result: TurnResult
    clocks: Clocks
    #: Its events in the log, once matched.
    recorded: list[LoggedEvent]


class _Recorded:
    """The object's events from a seq on, read through the history a page at a time and
    kept only while the rerun may still look at them."""

    def __init__(self, history: HistoryService, object_id: str, first: int, page: int) -> None:
        self._history = history
        self.object_id = object_id
        self._page = page
        self._events: deque[LoggedEvent] = deque()
        self._base = first
        self._after = first - 1
        self._done = False
        #: The next page, read while the turns of this one run.
        self._next: asyncio.Task[EventPage] | None = None

    async def get(self, seq: int) -> LoggedEvent | None:
        """The event at ``seq``, or None past the end of the log."""
        index = seq - self._base
        if 0 <= index < len(self._events):  # nearly always: pages are read ahead
            return self._events[index]
        while seq >= self._base + len(self._events) and not self._done:
            await self._read()
        index = seq - self._base
        return self._events[index] if 0 <= index < len(self._events) else None

    def close(self) -> None:
        if self._next is not None:
            self._next.cancel()

    async def slice(self, first: int, count: int) -> list[LoggedEvent]:
        index = first - self._base
        if index >= 0 and index + count <= len(self._events):
            return [self._events[i] for i in range(index, index + count)]
        found = []
        for seq in range(first, first + count):
            event = await self.get(seq)
            if event is None:
                break
            found.append(event)
        return found

    async def next_inbound(self, seq: int) -> LoggedEvent | None:
        """The first inbound event at or after ``seq``."""
        while (event := await self.get(seq)) is not None:
            if event.event.type in INBOUND:
                return event
            seq += 1
        return None

    async def turn_from(self, seq: int, *, own: bool = True) -> list[LoggedEvent]:
        """A turn's events as far as the log tells them apart: from ``seq`` up to the next
        inbound event (past the first, if the turn starts with ``own`` inbound event)."""
        found: list[LoggedEvent] = []
        while len(found) < _TURN_SHOWN and (event := await self.get(seq)) is not None:
            if event.event.type in INBOUND and (found or not own):
                break
            found.append(event)
            seq += 1
        return found

    def forget_before(self, seq: int) -> None:
        while self._events and self._base < seq:
            self._events.popleft()
            self._base += 1

    async def _read(self) -> None:
        reading, self._next = self._next, None
        if reading is None:
            reading = asyncio.ensure_future(self._page_after(self._after))
        page = await reading
        events = page.events
        if not events:
            self._done = True
            return
        if events[0].seq != self._after + 1:
            raise RerunError(f"the log skips from seq {self._after} to seq {events[0].seq}")
        self._events.extend(events)
        self._after = events[-1].seq
        if page.cursor is None:
            self._done = True
        else:
            # The next page is read while this one's turns run (they yield now and then).
            self._next = asyncio.ensure_future(self._page_after(self._after))

    def _page_after(self, seq: int) -> Awaitable[EventPage]:
        return self._history.events(self.object_id, after=seq, limit=self._page)


async def rerun(
    history: HistoryService,
    app: Application,
    ref: str,
    *,
    start: int | None = None,
    end: int | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    page: int = PAGE,
) -> Report:
    """Rerun the inbound events of the object ``ref`` names (``BINDING/NAME`` or its id),
    from seq ``start`` (default 1) to ``end`` (default its last), against ``app``.

    Raises UnknownObjectError for an unknown object and RerunError for a range outside its
    log or a binding the application does not have.
    """
    started = time.perf_counter()
    info = await history.find(ref)
    cls = app.bindings.get(info.binding)
    if cls is None:
        served = ", ".join(sorted(app.bindings)) or "none"
        raise RerunError(
            f"the object is of binding {info.binding}, which the application does not have "
            f"(it has: {served})"
        )
    first, last = _range(info, start, end)
    recorded = _Recorded(history, info.object_id, first, page)
    await _check_start(history, recorded, first)
    state = await history.state(info.object_id, at=first - 1)
    scratch = ScratchObject(
        app,
        DurableObjectId(info.object_id, info.name),
        info.binding,
        cls,
        state.state,
        limits or Limits(),
    )
    run = _Run(scratch, recorded, Report(info, first, last), progress)
    if not cls.record_messages:
        run.report.notes.append(
            f"{cls.__name__} has record_messages = False: the frames it gets now are not "
            "recorded, so its rerun turns miss the message_received the log may hold"
        )
    try:
        await run.go()
    finally:
        recorded.close()
    run.finish_notes()
    run.report.seconds = time.perf_counter() - started
    return run.report


def _range(info: ObjectInfo, start: int | None, end: int | None) -> tuple[int, int]:
    last = info.last_seq
    label = f"{info.binding}/{info.name}" if info.name is not None else info.object_id
    if last == 0:
        raise RerunError(f"{label} has no events yet")
    first = 1 if start is None else start
    final = last if end is None else end
    if not 1 <= first <= last:
        raise RerunError(f"{label} has events 1 to {last:,}: --from {first} is outside them")
    if not first <= final <= last:
        raise RerunError(
            f"{label} has events 1 to {last:,}: --to {final} is outside them "
            f"(or before --from {first})"
        )
    return first, final


async def _check_start(history: HistoryService, recorded: _Recorded, first: int) -> None:
    """A rerun starts at seq 1, at an inbound event that starts its turn, at a wake's event or
    at an operator's, never inside a turn: a close or an error is recorded after its
    handler's writes."""
    if first == 1:
        return
    event = await recorded.get(first)
    if event is None or event.event.type in STARTS_TURN | WAKES | GIVEN:
        return
    kind = event.event.type
    if kind in ENDS_TURN:
        page = await history.events(
            recorded.object_id,
            since=max(1, first - _LOOK_BACK),
            until=first - 1,
            types=sorted(INBOUND),
            limit=_LOOK_BACK,
        )
        before = page.events[-1] if page.events else None
        hint = (
            f"start at the inbound event before it (seq {before.seq:,}, a {before.event.type})"
            if before is not None
            else "start at an earlier inbound event, or at 1"
        )
        raise RerunError(
            f"seq {first:,} is a {kind}, recorded after what its handler wrote: {hint}"
        )
    following = await recorded.next_inbound(first)
    hint = (
        f" (the next one is seq {following.seq:,}, a {following.event.type})"
        if following is not None
        else ""
    )
    raise RerunError(
        f"seq {first:,} is a {kind}, not an inbound event: --from takes 1 or the seq of an "
        f"inbound event{hint}"
    )


class _Run:
    """One rerun in progress: the scratch object, where the log stands, what agreed."""

    def __init__(
        self,
        scratch: ScratchObject,
        recorded: _Recorded,
        report: Report,
        progress: Progress | None,
    ) -> None:
        self.scratch = scratch
        self.recorded = recorded
        self.report = report
        self.progress = progress
        self.matcher = Matcher(scratch.fresh_ids)
        #: The next seq of the log that no turn of the rerun has accounted for.
        self.position = report.start
        self.previous: _Step | None = None
        #: ``report.last_inbound`` before the previous turn (a divergence may undo it).
        self._last_before = 0
        self.cut_bodies: list[int] = []

    async def go(self) -> None:
        report = self.report
        first = await self.recorded.get(self.position)
        assert first is not None
        if not await self._wake(first if first.event.type in WAKES else None):
            return
        total = report.end - report.start + 1
        while True:
            marker = await self.recorded.next_inbound(self.position)
            if marker is None or marker.seq > report.end:
                await self._check_trailing(marker)
                return
            if marker.event.type not in ENDS_TURN and marker.seq > self.position:
                extra = await self.recorded.slice(self.position, marker.seq - self.position)
                self._blame_previous(extra)
                return
            if marker.event.type in WAKES:
                if not await self._wake(marker):
                    return
                continue
            if marker.event.type in GIVEN:
                self.scratch.take(self._as_rerun(known(marker.event)))
                self.position = marker.seq + 1
                continue
            step = await self._run(marker)
            matched = (
                await self._matches_through(step, marker)
                if marker.event.type in ENDS_TURN
                else await self._matches_from(step)
            )
            if not matched:
                return
            report.agreed += 1
            report.first_inbound = report.first_inbound or marker.seq
            self._last_before, report.last_inbound = report.last_inbound, marker.seq
            if report.agreed % _SETTLE_EVERY == 0:
                await self.scratch.settle()
                self.recorded.forget_before(self.position)
            if self.progress is not None:
                self.progress(min(self.position, report.end + 1) - report.start, total)

    async def _wake(self, cause: LoggedEvent | None) -> bool:
        """Construct the object, as a wake does: at the start of the rerun, or after an event
        that only a wake follows (``cause``, folded in first, as the node did). Whether what
        the constructor recorded agrees with the log."""
        if cause is not None:
            self.scratch.take(known(cause.event))
            self.position = cause.seq + 1
        at = await self.recorded.get(self.position) or cause
        assert at is not None
        began = time.time()
        result = await self.scratch.construct_turn()
        step = _Step(None, self.position, result, Clocks(at.recorded_at.timestamp(), began), [])
        if result.error is not None:
            self._diverge(step, 0, f"the constructor raised {result.error}", [])
            return False
        return await self._matches_from(step)

    async def _run(self, marker: LoggedEvent) -> _Step:
        """Deliver one recorded inbound event to the scratch object."""
        event = marker.event
        scratch = self.scratch
        alarms = scratch.recorded_alarms
        alarms.backoff = None
        if isinstance(event, types.RequestReceived):
            # The sockets it accepts take the ids the log gave them.
            following = await self.recorded.turn_from(marker.seq)
            scratch.socket_ids.extend(
                e.event.socket_id for e in following if isinstance(e.event, types.WebSocketAccepted)
            )
            kept = len(_body(event))
            if kept < event.body_bytes:
                self.cut_bodies.append(marker.seq)
        elif isinstance(event, types.AlarmFired):
            alarms.retry = event.retry_count
        began = time.time()
        result = await scratch.run(_delivery(known(event), self.matcher))
        tolerance = TIME_TOLERANCE + (0.25 * alarms.backoff if alarms.backoff else 0.0)
        clocks = Clocks(marker.recorded_at.timestamp(), began, tolerance)
        return _Step(marker, self.position, result, clocks, [])

    # -- matching a turn with the log ---------------------------------------------------

    async def _matches_from(self, step: _Step) -> bool:
        """A turn whose extent the rerun decides: its events against as many of the log's
        from where the last one ended (an inbound event of another turn ends them early)."""
        produced = step.result.events
        # Only a turn's own inbound event (its first) may be one: the next ends it.
        own = 1 if step.inbound is not None else 0
        logged = await self.recorded.slice(self.position, max(len(produced), own))
        for index, event in enumerate(logged):
            if index >= own and event.event.type in INBOUND:
                logged = logged[:index]
                break
        found = self._compare(step, logged)
        if found is not None:
            shown = await self.recorded.turn_from(self.position, own=bool(own))
            self._diverge(step, found[0], found[1], shown)
            return False
        step.recorded = logged
        self._agreed(step)
        return True

    async def _matches_through(self, step: _Step, marker: LoggedEvent) -> bool:
        """A close or error turn: its events must be the log's up to its inbound event."""
        produced = step.result.events
        logged = await self.recorded.slice(self.position, marker.seq - self.position + 1)
        found = self._compare(step, logged)
        if found is None:
            step.recorded = logged
            self._agreed(step)
            return True
        extra = len(logged) - len(produced)
        if (
            produced
            and extra > 0
            and self._compare(step, logged[extra:], self.matcher.copy()) is None
        ):
            # The rerun's turn is the end of the stretch; what comes before it in the log is
            # the end of the turn before, or this handler's: a turn is committed whole, so
            # the commit times tell them apart unless both turns shared a commit.
            before = self.previous.recorded[-1].recorded_at if self.previous else None
            own = [e.recorded_at == marker.recorded_at for e in logged[:extra]]
            if before != marker.recorded_at and not any(own):
                self._blame_previous(logged[:extra])
                return False
            whose = (
                "this handler's"
                if all(own) and before != marker.recorded_at
                else ("this handler's, or the end of the turn before it (both in one commit)")
            )
            found = (
                0,
                (
                    f"the log recorded {extra} more event(s) before this turn's last "
                    f"{len(produced)}, which the rerun did not: {describe(known(logged[0].event))} "
                    f"({whose})"
                ),
            )
        self._diverge(step, found[0], found[1], logged)
        return False

    def _compare(
        self, step: _Step, logged: list[LoggedEvent], matcher: Matcher | None = None
    ) -> tuple[int, str] | None:
        """Where the turn's events first differ from ``logged``, and how; None if nowhere."""
        matcher = matcher or self.matcher
        produced = step.result.events
        starts = step.inbound is not None and step.inbound.event.type in STARTS_TURN
        for index, (recorded, made) in enumerate(zip(logged, produced, strict=False)):
            if index == 0 and starts and recorded.event.type == made.type:
                # The turn's own record of what came in is its input, not what the code
                # decided: the log may hold more of it (a body past the size limit).
                continue
            difference = matcher.difference(known(recorded.event), made, step.clocks)
            if difference is not None:
                return index, difference
        if len(logged) == len(produced):
            return None
        index = min(len(logged), len(produced))
        if index < len(produced):
            return index, (
                f"the rerun recorded more: {describe(produced[index])}, where the log's turn ends"
            )
        if not produced:
            return 0, self._nothing_reason(step)
        return index, (
            f"the log recorded more: {describe(known(logged[index].event))}, "
            "which the rerun did not"
        )

    def _nothing_reason(self, step: _Step) -> str:
        """Why the rerun recorded nothing for an inbound event."""
        result = step.result
        if result.reset is not None:
            return f"the rerun reset the object during the turn: {result.reset}"
        event = step.inbound.event if step.inbound is not None else None
        socket_id = getattr(event, "socket_id", None)
        if (
            socket_id is not None
            and self.matcher.rerun_id(socket_id) not in self.scratch.state.sockets
        ):
            return f"socket {socket_id} is not open in the rerun, so nothing ran"
        if isinstance(event, types.AlarmFired) and self.scratch.state.alarm_ms is None:
            return "no alarm is set in the rerun, so none ran"
        return "the rerun recorded nothing for this event"

    def _agreed(self, step: _Step) -> None:
        self.position += len(step.result.events)
        self.previous = step

    # -- divergences --------------------------------------------------------------------

    def _diverge(self, step: _Step, index: int, reason: str, logged: list[LoggedEvent]) -> None:
        result = step.result
        self.report.divergence = Divergence(
            inbound=step.inbound,
            recorded=logged,
            rerun=[self._as_recorded(e) for e in result.events],
            first_seq=step.first_seq,
            index=index,
            reason=self.matcher.as_recorded(reason),
            sent=result.sent,
            status=result.status,
        )

    def _blame_previous(self, extra: list[LoggedEvent]) -> None:
        """The log has events after the last agreed turn that the rerun did not record."""
        step = self.previous
        assert step is not None  # the constructor's turn, at least, came before
        committed = step.recorded[-1].recorded_at if step.recorded else None
        if committed is not None and extra[0].recorded_at != committed:
            # A turn is committed whole: these were not part of it.
            why = (
                "committed apart from it: work outside any inbound event (a constructor at a "
                "wake, a background task), which a rerun does not run"
            )
        else:
            why = "the rerun's turn recorded less"
        reason = (
            f"the log recorded more after this turn: {describe(known(extra[0].event))}, which the "
            f"rerun did not ({why})"
        )
        self._diverge(step, len(step.recorded), reason, [*step.recorded, *extra])
        if step.inbound is not None:
            # That turn was counted as agreeing; it is the divergence after all.
            report = self.report
            report.agreed -= 1
            report.last_inbound = self._last_before
            if not report.agreed:
                report.first_inbound = 0

    async def _check_trailing(self, marker: LoggedEvent | None) -> None:
        """After the last turn in range: the log's events up to ``end`` that no turn
        explains (unless they may be the start of a close's turn past the range)."""
        end = self.report.end
        if marker is not None and marker.event.type in ENDS_TURN:
            return
        last = end if marker is None else min(end, marker.seq - 1)
        if last >= self.position:
            self._blame_previous(await self.recorded.slice(self.position, last - self.position + 1))

    def _as_rerun(self, event: types.Event) -> types.Event:
        """An event of the log naming its socket by the rerun's id for it."""
        socket_id = getattr(event, "socket_id", None)
        if socket_id is None or self.matcher.rerun_id(socket_id) == socket_id:
            return event
        return event.model_copy(update={"socket_id": self.matcher.rerun_id(socket_id)})

    def _as_recorded(self, event: types.Event) -> types.Event:
        """An event of the rerun with its paired ids shown as the log's."""
        data = types.to_data(event)
        shown = self.matcher.as_recorded(data)
        return event if shown == data else types.from_row(event.type, event.version, shown)

    def finish_notes(self) -> None:
        notes = self.report.notes
        scratch = self.scratch
        if scratch.skipped_background:
            notes.append(
                f"{scratch.skipped_background} awaitables handed to ctx.wait_until were not "
                "run (a rerun runs inbound work only)"
            )
        for refused in scratch.stubs.refused[:5]:
            notes.append(f"a call to another object was refused: {refused}")
        if self.cut_bodies:
            seqs = ", ".join(str(s) for s in self.cut_bodies[:5])
            notes.append(
                f"requests at seq {seqs} had bodies over the size limit: the log keeps, and "
                "the rerun gets, only their beginning"
            )


def _body(event: types.RequestReceived) -> bytes:
    if event.binary is not None:
        return base64.b64decode(event.binary)
    if event.text is None:
        return b""
    text = values.decode(event.text)
    return text.encode("utf-8") if isinstance(text, str) else b""


def _delivery(event: types.Event, matcher: Matcher) -> Delivery:
    """The delivery the node made of a recorded inbound event."""
    if isinstance(event, types.MessageReceived):
        data: str | bytes
        if event.binary is not None:
            data = base64.b64decode(event.binary)
        else:
            data = values.decode(event.text) if event.text is not None else ""
        return Delivery("message", matcher.rerun_id(event.socket_id), data)
    if isinstance(event, types.WebSocketClosed):
        return Delivery(
            "close",
            matcher.rerun_id(event.socket_id),
            code=event.code,
            reason=event.reason,
            was_clean=event.was_clean,
        )
    if isinstance(event, types.WebSocketErrored):
        return Delivery(
            "error", matcher.rerun_id(event.socket_id), error=event.error, code=event.code
        )
    if isinstance(event, types.RequestReceived):
        request = Request(event.url, method=event.method, headers=event.headers, body=_body(event))
        return Delivery("fetch", request=request)
    if isinstance(event, types.AlarmFired):
        return Delivery("alarm")
    if isinstance(event, types.RpcCalled):
        call = rpc.Call(
            event.call_id,
            event.method,
            event.args,
            event.kwargs,
            caller=event.caller,
            caller_label=event.caller_label,
        )
        return Delivery("rpc", call=call)
    raise ValueError(f"{event.type} is not an inbound event")
