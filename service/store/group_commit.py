"""Group commit: appends from every object are queued and flushed together.

One transaction per flush carries the events, the presence and alarm projections, the
snapshots, the consumed and new inbox rows, the output for sockets other nodes hold (the
outbox), the lines the turns logged, and at most one NOTIFY per node it wakes or sends to.
Each waiter's future resolves when its own events are durable (or fails with the reason
they are not). While a flush runs, new work queues up, so batches grow with load and latency stays
one commit when idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.backoff import Backoff
from service.ports.errors import (
    CommitInDoubtError,
    CommitRefusedError,
    ConflictError,
    StoreUnavailableError,
)
from service.ports.records import Append, InboxItem
from service.store import batch, connections, queries

log = logging.getLogger(__name__)

#: Errors that mean "the database is unreachable right now", worth retrying.
TRANSIENT_ERRORS = connections.LOST_LINK_ERRORS


def describe(error: BaseException) -> str:
    """An error for a message: its text, or its kind when it has none (timeouts)."""
    return str(error) or type(error).__name__


@dataclass(slots=True)
class _Pending:
    item: Append | InboxItem
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Attempt:
    """One try at committing a batch: what it learnt before sending COMMIT."""

    #: The transaction's id, to ask the database how it ended if COMMIT got no answer.
    xid: int | None = None
    inbox_ids: list[int] = field(default_factory=list)
    #: COMMIT was sent: from here on, a lost link leaves the outcome unknown.
    committing: bool = False


class _Slot:
    """Orders pipelined flushes: each takes the positions lock only after the previous one,
    and reports its outcome only after the previous one has reported.

    PostgreSQL queues lock waiters in arrival order, so a flush that asks for the lock after
    its predecessor holds it commits after it: appends that extend a chain written by the
    previous flush find it committed. The answers of two flushes come back on different
    connections and may be read in either order; resolving in flush order means a waiter
    never sees a later commit before an earlier one (an object's turns settle in order).
    """

    __slots__ = ("after", "locked", "previous", "settled")

    def __init__(self, previous: _Slot | None) -> None:
        self.locked: asyncio.Event = asyncio.Event()
        self.settled: asyncio.Event = asyncio.Event()
        self.after: asyncio.Event | None = previous.locked if previous is not None else None
        self.previous: asyncio.Event | None = previous.settled if previous is not None else None

    async def turn_to_settle(self) -> None:
        """Wait until the previous flush has resolved or failed its waiters."""
        if self.previous is not None:
            await self.previous.wait()


class _Conflicts(Exception):
    def __init__(self, object_ids: set[str]) -> None:
        super().__init__(object_ids)
        self.object_ids = object_ids


class GroupCommit:
    """The single writer of a node: batches appends and inbox items into few commits."""

    def __init__(
        self,
        pool: connections.Pool,
        node_id: str,
        channel: str,
        *,
        max_batch_events: int = 5000,
        pipeline_depth: int = 2,
        overlap: int = 64,
        copy_from: int = 1000,
        retry_seconds: float = 10.0,
        on_flush: Callable[[int, float], None] | None = None,
    ) -> None:
        self._pool = pool
        self._node_id = node_id
        self._channel = channel
        self._max_batch_events = max_batch_events
        self._pipeline_depth = max(1, pipeline_depth)
        self._overlap = max(1, overlap)
        #: Flushes of at least this many events send them by COPY (one more round trip,
        #: less CPU per row); smaller ones pass them to durable_flush_v1 as records.
        self._copy_from = copy_from
        #: Flush tasks started and not yet seen finished by the run loop, with their slots.
        self._in_flight: list[tuple[asyncio.Task[None], _Slot]] = []
        self._retry_seconds = retry_seconds
        self._on_flush = on_flush
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_slot: _Slot | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def close(self) -> None:
        """Flush what is queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def append(self, append: Append) -> asyncio.Future[None]:
        """Queue an append; the future resolves when it is committed."""
        return self._submit(append)

    def enqueue(self, item: InboxItem) -> asyncio.Future[int]:
        """Queue an inbox row; the future resolves to its id once committed (and notified)."""
        return self._submit(item)

    def _submit(self, item: Append | InboxItem) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = (self._loop or asyncio.get_running_loop()).create_future()
        if self._closing and self._task is not None and self._task.done():
            future.set_exception(StoreUnavailableError("the event store is closed"))
            return future
        self._queue.append(_Pending(item, future))
        if not self._in_flight or len(self._queue) >= self._overlap:
            self._wakeup.set()
        return future

    async def _run(self) -> None:
        """Take batches and flush them, up to ``pipeline_depth`` transactions at a time.

        While one flush is in the database, the next is prepared and waits for the lock, and
        the previous one's waiters are resolved: Python and PostgreSQL work side by side.
        A second flush starts only once ``overlap`` items are queued: under light load, one
        flush at a time carries everything that arrived meanwhile, instead of twice as many
        flushes of half the size, each costing its round trips and Python work.
        """
        in_flight = self._in_flight
        while True:
            if not self._queue or (
                in_flight
                and (len(in_flight) >= self._pipeline_depth or len(self._queue) < self._overlap)
            ):
                if not self._queue and self._closing and not in_flight:
                    return
                waits: list[asyncio.Future[Any]] = [task for task, _ in in_flight]
                self._wakeup.clear()
                if len(in_flight) < self._pipeline_depth:
                    waits.append(asyncio.ensure_future(self._wakeup.wait()))
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for future in waits:
                    if future not in done and not any(future is t for t, _ in in_flight):
                        future.cancel()
                in_flight[:] = [(t, s) for t, s in in_flight if not t.done()]
                continue
            taken, deferred = _chains(self._take())
            # Appends that do not follow their object's chain in this batch (two writers at
            # one seq) wait for the next flush, which decides them against the table.
            self._queue[:0] = deferred
            if not taken:
                continue
            slot = _Slot(in_flight[-1][1] if in_flight else self._last_slot)
            self._last_slot = slot
            task = asyncio.create_task(self._flush_slot(taken, slot))
            in_flight.append((task, slot))

    async def _flush_slot(self, taken: list[_Pending], slot: _Slot) -> None:
        try:
            await self._flush_all(taken, slot)
        finally:
            slot.locked.set()
            slot.settled.set()
            slot.previous = None  # no chain of finished slots is kept alive

    def _take(self) -> list[_Pending]:
        count, size = 0, 0
        for count, pending in enumerate(self._queue, start=1):  # noqa: B007
            if isinstance(pending.item, Append):
                size += len(pending.item.events)
            if size >= self._max_batch_events:
                break
        taken, self._queue = self._queue[:count], self._queue[count:]
        return taken

    async def _flush_all(self, taken: list[_Pending], slot: _Slot) -> None:
        """Flush a batch; isolate failures so one object's bad append fails only itself."""
        taken = [p for p in taken if not p.future.done()]
        if not taken:
            return
        try:
            await self._flush_with_retry(taken, slot)
        except _Conflicts as conflicts:
            rest = []
            for pending in taken:
                item = pending.item
                if isinstance(item, Append) and item.object_id in conflicts.object_ids:
                    pending.future.set_exception(
                        ConflictError(
                            f"object {item.object_id} was changed by another writer "
                            f"(expected seq {item.expected_seq}, epoch {item.epoch})"
                        )
                    )
                else:
                    rest.append(pending)
            if rest:
                await self._flush_all(rest, slot)
        except StoreUnavailableError as error:
            await slot.turn_to_settle()
            _fail(taken, error)
        except Exception as error:
            groups = _group(taken)
            if len(groups) + sum(isinstance(p.item, InboxItem) for p in taken) <= 1:
                log.error("the database refused a commit: %s", error, extra={"action": "flush"})
                _fail(taken, CommitRefusedError(f"the database refused the commit: {error}"))
                return
            # Flush each object on its own to find the one whose data the database refuses.
            for object_id in groups:
                await self._flush_all([p for p in taken if _object_of(p) == object_id], slot)
            inbox = [p for p in taken if isinstance(p.item, InboxItem)]
            for pending in inbox:
                await self._flush_all([pending], slot)

    async def _flush_with_retry(self, taken: list[_Pending], slot: _Slot) -> None:
        """Commit the batch, retrying while the database is away; decide its outcome once.

        The retry window (``retry_seconds``) runs from the start of the outage, not of this
        flush: once the database has refused connections for that long, a flush fails at its
        first failed attempt, and work queued behind it does not wait a window of its own.
        A COMMIT whose answer was lost is never retried nor given up on: the database is
        asked how it ended (``txid_status``) until it can say, however long that takes.
        """
        began = time.monotonic()
        backoff = Backoff(0.05, 1.0)
        appends = [p for p in taken if isinstance(p.item, Append)]
        inbox = [p for p in taken if isinstance(p.item, InboxItem)]
        rows = batch.build(_group(taken), [p.item for p in inbox])  # type: ignore[misc]
        attempt: _Attempt | None = None
        while True:
            started = time.perf_counter()
            try:
                # Retrying blindly after a lost COMMIT would report a conflict for a commit
                # that happened, or write the inbox rows twice: ask how it ended first.
                if attempt is not None and attempt.committing and await self._committed(attempt):
                    break
                attempt = _Attempt()
                await self._flush(rows, attempt, slot)
                break
            except TRANSIENT_ERRORS as error:
                in_doubt = attempt is not None and attempt.committing
                remaining = self._deadline(began) - time.monotonic()
                if remaining <= 0 and not in_doubt:
                    raise StoreUnavailableError(
                        f"the database is unavailable: {describe(error)}"
                    ) from error
                log.warning(
                    "%s: %s",
                    "the outcome of an interrupted commit is not known yet, asking again"
                    if in_doubt
                    else "flush failed, retrying",
                    describe(error),
                    extra={"action": "flush"},
                )
                # The last attempt is made at the deadline: the whole window is used.
                delay = backoff.next()
                await asyncio.sleep(delay if in_doubt else min(delay, remaining))
        await slot.turn_to_settle()
        self._resolve(appends, inbox, attempt.inbox_ids)
        if self._on_flush is not None:
            try:
                self._on_flush(rows.event_count, time.perf_counter() - started)
            except Exception:
                # The commit stands; an observer's failure must not be taken for the commit's.
                log.exception("the flush observer failed", extra={"action": "flush"})

    def _deadline(self, began: float) -> float:
        """When retrying stops: ``retry_seconds`` after this flush or the outage began."""
        down = self._pool.health.down_since
        return (began if down is None else min(began, down)) + self._retry_seconds

    async def _flush(self, rows: batch.FlushBatch, attempt: _Attempt, slot: _Slot) -> None:
        """Three round trips: BEGIN, durable_flush_v1, COMMIT (plus a COPY for large batches).

        Under load each answer waits for the event loop to come round, so round trips, not
        rows, set how long a small flush takes.
        """
        by_copy = rows.event_count >= self._copy_from
        arguments = rows.arguments(self._node_id, self._channel, events=not by_copy)
        async with self._pool.borrow() as connection:
            async with connection.transaction():
                if slot.after is not None:
                    await slot.after.wait()
                # The routing's parameters (woken ids, outbox rows), then the lines'.
                extra: list[object] = [sorted(rows.woken), rows.outbox] if rows.routes else []
                if rows.logs:
                    extra.append(rows.logs)
                query = queries.FLUSHES[bool(rows.routes), bool(rows.logs)]
                result = await connection.fetchrow(query, *arguments, *extra)
                attempt.xid, stale, inbox_ids = result[0], result[1], result[2]
                slot.locked.set()
                if stale:
                    raise _Conflicts(set(stale))
                if by_copy:
                    # COPY: well under half the client CPU of records for the same rows.
                    await connection.copy_records_to_table(
                        "events", records=rows.events, columns=queries.EVENT_COLUMNS
                    )
                attempt.inbox_ids = inbox_ids
                attempt.committing = True
            attempt.committing = False

    async def _committed(self, attempt: _Attempt) -> bool:
        """How an interrupted COMMIT ended; raises CommitInDoubtError while it runs on."""
        async with self._pool.borrow() as connection:
            status = await connection.fetchval(queries.TRANSACTION_STATUS, attempt.xid)
        log.warning("an interrupted commit was %s", status, extra={"action": "flush"})
        if status == "in progress":
            raise CommitInDoubtError("an interrupted commit is still in progress")
        return bool(status == "committed")

    @staticmethod
    def _resolve(appends: list[_Pending], inbox: list[_Pending], inbox_ids: list[int]) -> None:
        for pending in appends:
            if not pending.future.done():
                pending.future.set_result(None)
        for pending, inbox_id in zip(inbox, inbox_ids, strict=True):
            assert isinstance(pending.item, InboxItem)
            pending.item.id = inbox_id
            if not pending.future.done():
                pending.future.set_result(inbox_id)


def _object_of(pending: _Pending) -> str | None:
    return pending.item.object_id if isinstance(pending.item, Append) else None


def _group(taken: list[_Pending]) -> dict[str, list[Append]]:
    groups: dict[str, list[Append]] = {}
    for pending in taken:
        if isinstance(pending.item, Append):
            groups.setdefault(pending.item.object_id, []).append(pending.item)
    return groups


def _chains(taken: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
    """Split a batch into what can be flushed now and what must wait for the next flush.

    Each object's appends in one flush must follow each other seq for seq under one epoch;
    the first append of an object starts its chain, and an append that does not extend it
    is deferred with everything after it for that object.
    """
    now: list[_Pending] = []
    deferred: list[_Pending] = []
    ends: dict[str, tuple[int, int]] = {}
    broken: set[str] = set()
    for pending in taken:
        item = pending.item
        if pending.future.done():
            continue  # cancelled by its waiter before it was written: dropped
        if not isinstance(item, Append):
            now.append(pending)
            continue
        end = ends.get(item.object_id)
        if item.object_id in broken or (end is not None and end != (item.expected_seq, item.epoch)):
            broken.add(item.object_id)
            deferred.append(pending)
            continue
        ends[item.object_id] = (item.expected_seq + len(item.events), item.epoch)
        now.append(pending)
    return now, deferred


def _fail(taken: list[_Pending], error: Exception) -> None:
    for pending in taken:
        if not pending.future.done():
            pending.future.set_exception(error)
