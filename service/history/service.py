"""The history service: the front ends' questions about the log, answered through its port.

Objects are named as users name them; states come from the one replay (``replay.state``),
so what the history says an object was is what a wake would have rebuilt.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime

from service.api.ids import IdFactory
from service.events.types import ObjectForked
from service.history import replay, state_diff
from service.ports.history import (
    AmbiguousObjectError,
    DiffBetween,
    EventPage,
    Forked,
    HistoryError,
    LogPage,
    ObjectInfo,
    ObjectPage,
    OutOfHistoryError,
    Point,
    Progress,
    SocketRecord,
    StateAt,
    TailPage,
    UnknownObjectError,
)
from service.ports.history_log import HistoryLog

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

#: "To the end of the log": the largest seq the table can hold.
_END = 2**63 - 1


class LogHistory:
    """The ``HistoryService`` over a ``HistoryLog`` (the store's history reads)."""

    def __init__(self, log: HistoryLog, *, replay_page: int = replay.PAGE) -> None:
        self._log = log
        self._replay_page = replay_page

    async def find(self, ref: str) -> ObjectInfo:
        """The object ``ref`` names: ``BINDING/NAME`` (the name may hold slashes) or its id."""
        if _HEX64.fullmatch(ref):
            found = await self._log.object_by_id(ref.lower())
            if found is None:
                raise UnknownObjectError(f"no object has the id {ref}")
            return found
        binding, slash, name = ref.partition("/")
        if "\x00" in ref:
            # PostgreSQL text cannot hold it: no object is named with it.
            raise UnknownObjectError(f"{ref!r} names no object: a name holds no NUL character")
        if not slash or not binding or not name:
            raise UnknownObjectError(
                f"{ref!r} names no object: give BINDING/NAME (e.g. CHAT/lobby) or a 64-hex id"
            )
        named = await self._log.objects_named(binding, name)
        if not named:
            raise UnknownObjectError(f"no object of binding {binding} is named {name!r}")
        if len(named) > 1:
            ids = ", ".join(o.object_id for o in named)
            raise AmbiguousObjectError(f"{ref} names {len(named)} objects ({ids}): give the id")
        return named[0]

    async def events(
        self,
        ref: str,
        *,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        types: Collection[str] | None = None,
        after: int | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> EventPage:
        if limit < 1:
            raise ValueError(f"a page holds at least one event, not {limit}")
        _check_times(since, until)
        found = await self.find(ref)
        after_seq = since - 1 if isinstance(since, int) else 0
        until_seq = until if isinstance(until, int) else _END
        # The cursor is the seq the previous page ended with: the next one starts past it,
        # above it in seq order, below it newest first.
        if after is not None and descending:
            until_seq = min(until_seq, after - 1)
        elif after is not None:
            after_seq = max(after_seq, after)
        # One more than asked for says whether another page follows.
        events = await self._log.events_in(
            found.object_id,
            after_seq=max(after_seq, 0),
            until_seq=until_seq,
            since=since if isinstance(since, datetime) else None,
            until=until if isinstance(until, datetime) else None,
            types=None if types is None else sorted(set(types)),
            limit=limit + 1,
            descending=descending,
        )
        if len(events) > limit:
            return EventPage(events[:limit], events[limit - 1].seq)
        return EventPage(events, None)

    async def logs(
        self,
        ref: str,
        *,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        after: tuple[int, int] | None = None,
        limit: int = 100,
    ) -> LogPage:
        if limit < 1:
            raise ValueError(f"a page holds at least one line, not {limit}")
        _check_times(since, until)
        found = await self.find(ref)
        # From seq ``since`` on: past every line of the turns that ended before it.
        start = (since - 1, _END) if isinstance(since, int) else (0, 0)
        lines = await self._log.lines_in(
            found.object_id,
            after=max(start, after or (0, 0)),
            until_seq=until if isinstance(until, int) else _END,
            since=since if isinstance(since, datetime) else None,
            until=until if isinstance(until, datetime) else None,
            limit=limit + 1,
        )
        if len(lines) > limit:
            last = lines[limit - 1]
            return LogPage(lines[:limit], (last.seq, last.id))
        return LogPage(lines, None)

    async def state(
        self, ref: str, *, at: int | datetime | None = None, progress: Progress | None = None
    ) -> StateAt:
        _check_times(at)
        found = await self.find(ref)
        return await self._state_of(found, await self._seq_of(found, at), progress)

    async def diff(
        self, ref: str, first: Point, second: Point, *, progress: Progress | None = None
    ) -> DiffBetween:
        _check_times(first, second)
        found = await self.find(ref)
        first_seq = await self._seq_of(found, first)
        second_seq = await self._seq_of(found, second)
        before = await self._state_of(found, first_seq, progress)
        offset = before.folded

        def continued(done: int, total: int) -> None:
            # One bar for both replays: the second adds to what the first folded.
            if progress is not None:
                progress(offset + done, offset + total)

        after = await self._state_of(found, second_seq, continued)
        return DiffBetween(found, first_seq, second_seq, state_diff.diff(before.state, after.state))

    async def seq_of(self, ref: str, at: Point) -> int:
        _check_times(at)
        return await self._seq_of(await self.find(ref), at)

    async def objects(
        self,
        *,
        binding: str | None = None,
        live: bool | None = None,
        after: tuple[str, str, str] | None = None,
        limit: int = 100,
        name: str | None = None,
    ) -> ObjectPage:
        if limit < 1:
            raise ValueError(f"a page holds at least one object, not {limit}")
        found = await self._log.catalog(
            binding=binding, live=live, after=after, limit=limit + 1, name=name
        )
        if len(found) > limit:
            last = found[limit - 1]
            return ObjectPage(found[:limit], (last.binding, last.name or "", last.object_id))
        return ObjectPage(found, None)

    async def presence(
        self,
        *,
        tag: str | None = None,
        ref: str | None = None,
        at: datetime | None = None,
        limit: int = 1000,
    ) -> list[SocketRecord]:
        if limit < 1:
            raise ValueError(f"a page holds at least one socket, not {limit}")
        _check_times(at)
        object_id = None if ref is None else (await self.find(ref)).object_id
        return await self._log.open_sockets(tag=tag, object_id=object_id, at=at, limit=limit)

    async def sockets(self, ref: str, socket_ids: Collection[str]) -> list[SocketRecord]:
        found = await self.find(ref)
        if not socket_ids:
            return []
        return await self._log.sockets_by_id(found.object_id, socket_ids)

    async def _state_of(self, found: ObjectInfo, seq: int, progress: Progress | None) -> StateAt:
        """The state of ``found`` after its event ``seq``, through the one replay."""
        try:
            replayed = await replay.state(
                self._log, found.object_id, until_seq=seq, page=self._replay_page, progress=progress
            )
        except ValueError as error:
            # An event that does not parse (a type or version of a newer node): folding
            # around it would show a state that never was.
            reason = str(error).splitlines()[:3]
            raise HistoryError(
                f"{_label(found)} cannot be replayed by this version of the service (a newer "
                f"one wrote events it does not know): {' '.join(r.strip() for r in reason)}"
            ) from error
        if replayed.state.seq != seq:
            # The catalog and the log are written in one transaction: this is a damaged log.
            raise HistoryError(
                f"the log of {found.object_id} ends at seq {replayed.state.seq}, "
                f"not at {seq} as its catalog says"
            )
        return StateAt(found, seq, replayed.state, replayed.snapshot_seq, replayed.events)

    async def tail(self, after: int = 0, *, limit: int = 1000) -> TailPage:
        if limit < 1:
            raise ValueError(f"a page holds at least one event, not {limit}")
        events = await self._log.settled_after(after, limit)
        return TailPage(events, events[-1].position if events else after)

    async def head(self) -> int:
        return await self._log.settled_head()

    async def fork(
        self,
        ref: str,
        *,
        at: int | datetime,
        as_name: str,
        unique_key: str | None = None,
        by: str,
    ) -> Forked:
        """The new object's log begins with ``object_forked``, which carries the state it
        starts with, so replaying it needs nothing of the source (which may change, or be
        forked again, without changing the fork)."""
        _check_times(at)
        source = await self.find(ref)
        key = source.binding if unique_key is None else unique_key
        ids = IdFactory(key)
        try:
            ids.from_string(source.object_id)
        except TypeError:
            # Else the fork would get an id that no client of the namespace ever asks for.
            raise HistoryError(
                f"{_label(source)} is not of the namespace keyed {key!r}: give the "
                "namespace's unique key (`durable fork --app APP` reads it from the application)"
            ) from None
        try:
            new_id = ids.from_name(as_name)
        except TypeError as error:
            raise HistoryError(f"{as_name!r} cannot name an object: {error}") from None
        at_state = await self._state_of(source, await self._seq_of(source, at), None)
        state = at_state.state
        event = ObjectForked(
            source_object_id=source.object_id,
            source_binding=source.binding,
            source_name=source.name,
            source_seq=at_state.seq,
            by=by,
            storage=dict(state.storage),
            auto_response=state.auto_response,
            event_timeout_ms=state.event_timeout_ms,
            alarm_ms=state.alarm_ms,
        )
        await self._log.start_object(str(new_id), source.binding, as_name, event)
        return Forked(
            object_id=str(new_id),
            binding=source.binding,
            name=as_name,
            source=source,
            seq=at_state.seq,
            by=by,
            keys=len(state.storage),
            alarm_ms=state.alarm_ms,
        )

    async def _seq_of(self, found: ObjectInfo, at: int | datetime | None) -> int:
        """The seq a state ``at`` is after; OutOfHistoryError outside the object's log."""
        if at is None:
            return found.last_seq
        if isinstance(at, int):
            if not 0 <= at <= found.last_seq:
                raise OutOfHistoryError(
                    f"{_label(found)} has events 1 to {found.last_seq}: "
                    f"there is no state after seq {at}"
                )
            return at
        seq = await self._log.seq_at(found.object_id, at)
        if seq == 0:
            first = await self._log.events_in(
                found.object_id,
                after_seq=0,
                until_seq=_END,
                since=None,
                until=None,
                types=None,
                limit=1,
            )
            if not first:
                raise OutOfHistoryError(f"{_label(found)} has no events yet")
            raise OutOfHistoryError(
                f"{at.isoformat()} is before the first event of {_label(found)} "
                f"(recorded at {first[0].recorded_at.isoformat()})"
            )
        return seq


def _check_times(*points: int | datetime | None) -> None:
    """Refuse a time without its zone: the log's times are instants, and guessing the zone
    would silently shift a question by hours."""
    for point in points:
        if isinstance(point, datetime) and point.utcoffset() is None:
            raise ValueError(f"{point.isoformat()} has no time zone: give one (e.g. +00:00)")


def _label(found: ObjectInfo) -> str:
    """How an object is named in messages: ``BINDING/NAME``, or ``BINDING`` and its id."""
    if found.name is not None:
        return f"{found.binding}/{found.name}"
    return f"{found.binding} {found.object_id}"
