"""The one replay: an object's state folded from its newest snapshot and the events after it.

Waking an object, the history's questions ("what was true at seq n, or at time t") and the
tests' "replay equals live" oracle all go through here, so they cannot disagree. The events
are read a page at a time, each page a short statement, so a long history is never held in
memory whole nor read in one query that outlives the command timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from service.events import snapshot
from service.events.fold import ObjectState, apply
from service.events.types import Event
from service.ports.event_log import LogReader

#: Events read per page.
PAGE = 10_000

#: "Up to the end of the log": the largest seq the table can hold.
_END = 2**63 - 1


@dataclass(slots=True)
class Replayed:
    """An object's state, and how much of its log it took to rebuild it."""

    state: ObjectState
    #: The seq of the snapshot the fold started from (0: none, it started from seq 1).
    snapshot_seq: int
    #: Events folded after that snapshot.
    events: int


@dataclass(slots=True)
class History:
    """The same reading, unfolded: the snapshot replay starts from and the events after it."""

    snapshot_seq: int
    #: The snapshot's encoded state (``service.events.snapshot``), or None.
    snapshot: str | None
    events: list[Event]


async def state(
    reader: LogReader,
    object_id: str,
    *,
    until_seq: int | None = None,
    until_time: datetime | None = None,
    page: int = PAGE,
    progress: Callable[[int, int], None] | None = None,
) -> Replayed:
    """The state of ``object_id`` after its event ``until_seq`` (or the last one recorded at
    or before ``until_time``; by default its last); a fresh state if it has none.

    ``progress(folded, to_fold)`` is called after each page (``to_fold`` is 0 when the end
    is not known beforehand: no ``until_seq``), for a front end to show a long replay.
    """
    until = await _bound(reader, object_id, until_seq, until_time)
    newest = await reader.snapshot_at(object_id, until)
    start, folded = (newest[0], snapshot.decode(newest[1])) if newest else (0, ObjectState())
    total = until - start if until < _END else 0
    count = 0
    async for events in reader.events_between(object_id, start, until, page):
        for event in events:
            apply(folded, event)
        count += len(events)
        if progress is not None:
            progress(count, total)
    return Replayed(folded, start, count)


async def history(
    reader: LogReader,
    object_id: str,
    *,
    until_seq: int | None = None,
    until_time: datetime | None = None,
    page: int = PAGE,
) -> History:
    """What ``state`` folds, as it is in the log: to read the events rather than the state."""
    until = await _bound(reader, object_id, until_seq, until_time)
    newest = await reader.snapshot_at(object_id, until)
    start = newest[0] if newest else 0
    events = [
        e async for events in reader.events_between(object_id, start, until, page) for e in events
    ]
    return History(start, newest[1] if newest else None, events)


async def _bound(
    reader: LogReader, object_id: str, until_seq: int | None, until_time: datetime | None
) -> int:
    """The last seq to fold: ``until_seq``, or the last at ``until_time``, whichever is lower."""
    until = _END if until_seq is None else until_seq
    if until_time is not None:
        until = min(until, await reader.seq_at(object_id, until_time))
    return until
