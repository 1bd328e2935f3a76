"""The event store a node runs on: asyncpg pool, group commit, replay reads, inbox, listener,
and the node's row in ``nodes`` (its leases).

This is the implementation of the runtime's ``EventLog`` port; it knows events and plain
records, never object classes or HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from service.ports.cluster import LiveHost, SweptNode
from service.ports.errors import OwnedElsewhereError
from service.ports.records import Append, Claim, InboxItem, PublishedMessage, RemoteOutput
from service.store import connections, database_url, log_reads, notifications, queries
from service.store.group_commit import GroupCommit
from service.store.listener import Listener
from service.store.nodes import NodeRow

#: The NOTIFY channel every node shared before each had its own (``notifications.channel_of``);
#: durable_flush_v1 still takes it, and is no longer asked to notify on it.
CHANNEL = "durable_v1"

#: Claims retried when the owner a claim met released the object before it was asked.
CLAIM_ATTEMPTS = 3

#: Seconds the pools get to close their connections politely before they are cut (a link
#: that went silent would otherwise hold the node's shutdown up until TCP gives up).
CLOSE_TIMEOUT = 5.0

#: Connections of ``pool_size`` kept for commits and health checks: two pipelined flushes
#: and one to ask how an interrupted COMMIT ended, or to answer /healthz.
COMMIT_CONNECTIONS = 3

T = TypeVar("T")


class EventStore(log_reads.LogReads):
    """All database access of one node."""

    def __init__(
        self,
        dsn: str,
        node_id: str,
        *,
        pool_size: int = 10,
        retry_seconds: float = 10.0,
        command_timeout: float = 10.0,
        acquire_timeout: float = 5.0,
        max_batch_events: int = 5000,
        copy_events_from: int = 1000,
        on_flush: Callable[[int, float], None] | None = None,
        on_pool_exhausted: Callable[[str], None] | None = None,
    ) -> None:
        self.dsn = database_url.for_asyncpg(dsn)
        self.node_id = node_id
        self._pool_size = pool_size
        self._retry_seconds = retry_seconds
        self._command_timeout = command_timeout
        self._acquire_timeout = acquire_timeout
        self._max_batch_events = max_batch_events
        self._copy_events_from = copy_events_from
        self._on_flush = on_flush
        self._on_pool_exhausted = on_pool_exhausted
        self.health = connections.Health()
        self._pool: connections.Pool | None = None
        self._commit_pool: connections.Pool | None = None
        self._commit: GroupCommit | None = None
        self._listener: Listener | None = None
        self._node_row: NodeRow | None = None

    async def open(self) -> None:
        """Start the pools and the writer.

        Connections open when first needed (and time out like commands), so a store opens
        while the database is away and its calls then fail with StoreUnavailableError
        instead of hanging or raising driver errors. Commits and health checks have
        connections of their own (``COMMIT_CONNECTIONS`` of ``pool_size``), so that reads
        and wakes blocked on locks or a slow database never hold up the node's writes.
        """
        reserved = min(COMMIT_CONNECTIONS, self._pool_size - 1)
        self._commit_pool = await self._make_pool("commit", reserved)
        self._pool = await self._make_pool("general", self._pool_size - reserved)
        self._commit = GroupCommit(
            self._commit_pool,
            self.node_id,
            CHANNEL,
            max_batch_events=self._max_batch_events,
            copy_from=self._copy_events_from,
            retry_seconds=self._retry_seconds,
            on_flush=self._on_flush,
        )
        self._commit.start()
        self._node_row = NodeRow(self.dsn, self.node_id, self._pool, timeout=self._command_timeout)

    async def _make_pool(self, name: str, size: int) -> connections.Pool:
        pool = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            reset=connections.keep_session,
            max_size=size,
            command_timeout=self._command_timeout,
            timeout=self._command_timeout,
            server_settings={
                # A flush holds the positions lock (taken in durable_flush_v1) until it ends. If
                # this node loses its link mid-flush, the server would keep the transaction
                # open, idle, until TCP gives up (hours), stalling every node's commits. No
                # transaction of ours waits on the client for long, so end such sessions.
                "idle_in_transaction_session_timeout": str(int(self._command_timeout * 1000)),
                "application_name": f"durable {self.node_id}"[:63],
            },
        )
        return connections.Pool(
            pool,
            name,
            self.health,
            acquire_timeout=self._acquire_timeout,
            on_exhausted=self._on_pool_exhausted,
        )

    async def close(self) -> None:
        """Flush what is queued, stop listening, close the node's connection and the pools."""
        if self._commit is not None:
            await self._commit.close()
        if self._listener is not None:
            await self._listener.close()
        if self._node_row is not None:
            await self._node_row.close()
        for pool in (self._pool, self._commit_pool):
            if pool is not None:
                await pool.close(CLOSE_TIMEOUT)

    @property
    def pool(self) -> asyncpg.Pool:
        """The general pool (reads, claims, the inbox), for ad-hoc queries."""
        assert self._pool is not None, "EventStore.open() was not awaited"
        return self._pool.raw

    def unavailable(self) -> str | None:
        """Why the database is taken to be away (it refused connections), or None."""
        if self.health.down_since is None:
            return None
        return self.health.reason or "it refused connections"

    def pool_usage(self) -> dict[str, tuple[int, int]]:
        """Connections in use and the size, of each pool."""
        return {
            pool.name: (pool.in_use(), pool.size())
            for pool in (self._pool, self._commit_pool)
            if pool is not None
        }

    # -- the node's row (the NodeDirectory port) ---------------------------------------

    @property
    def _row(self) -> NodeRow:
        assert self._node_row is not None, "EventStore.open() was not awaited"
        return self._node_row

    async def join(self, address: str | None, role: str, lease_timeout: float) -> None:
        await self._row.join(address, role, lease_timeout)

    async def heartbeat(self) -> bool:
        return await self._row.heartbeat()

    async def serving_at(self, address: str) -> None:
        await self._row.serving_at(address)

    async def drain(self) -> None:
        await self._row.drain()

    async def leave(self) -> None:
        await self._row.leave()

    async def prune(self, retention: float) -> list[str]:
        return await self._row.prune(retention)

    async def sweep_dead_node(self, close: dict[str, Any]) -> SweptNode | None:
        return await self._row.sweep_dead_node(close)

    async def live_hosts(self) -> list[LiveHost]:
        return await self._row.live_hosts()

    # -- writes -------------------------------------------------------------------------

    def append(self, append: Append) -> Awaitable[None]:
        assert self._commit is not None
        return self._commit.append(append)

    def enqueue(self, item: InboxItem) -> Awaitable[int]:
        assert self._commit is not None
        return self._commit.enqueue(item)

    async def claim(self, object_id: str, binding: str, name: str | None) -> Claim:
        """Take the object's lease (creating it); OwnedElsewhereError if a live node has it."""
        for _ in range(CLAIM_ATTEMPTS):
            row = await self._fetchrow(queries.CLAIM_OBJECT, object_id, binding, name, self.node_id)
            if row is not None:
                return _claim(object_id, row)
            await self._check_owner(object_id)
        raise OwnedElsewhereError(object_id, "(changing hands)")

    async def claim_existing(self, object_id: str) -> Claim | None:
        """Take the lease of an existing object; None if there is no such object,
        OwnedElsewhereError if a live node has it."""
        for _ in range(CLAIM_ATTEMPTS):
            row = await self._fetchrow(queries.CLAIM_EXISTING, object_id, self.node_id)
            if row is not None:
                return _claim(object_id, row)
            owner = await self._fetchrow(queries.OWNER_OF, object_id)
            if owner is None:
                return None
            await self._check_owner(object_id, owner[0])
        raise OwnedElsewhereError(object_id, "(changing hands)")

    async def _check_owner(self, object_id: str, owner: str | None = None) -> None:
        """After a claim that took nothing: raise if a node owns the object; return if it
        was released meanwhile (the caller claims again)."""
        if owner is None:
            owner = await self._call(lambda c: c.fetchval(queries.OWNER_OF, object_id))
        if owner is not None and owner != self.node_id:
            raise OwnedElsewhereError(object_id, owner)

    async def release(self, object_id: str, epoch: int) -> None:
        await self._call(lambda c: c.execute(queries.RELEASE_OBJECT, object_id, epoch))

    async def register(self, object_id: str, binding: str, name: str | None) -> None:
        await self._call(lambda c: c.execute(queries.REGISTER_OBJECT, object_id, binding, name))

    # -- reads --------------------------------------------------------------------------

    async def inbox(self, object_id: str) -> list[InboxItem]:
        rows = await self._call(lambda c: c.fetch(queries.INBOX_OF, object_id))
        return [
            InboxItem(object_id, r["kind"], r["socket_id"], json.loads(r["data"]), r["id"])
            for r in rows
        ]

    async def inboxes(self, object_ids: Sequence[str]) -> dict[str, list[InboxItem]]:
        rows = await self._call(lambda c: c.fetch(queries.INBOX_OF_MANY, list(object_ids)))
        found: dict[str, list[InboxItem]] = {object_id: [] for object_id in object_ids}
        for r in rows:
            object_id = r["object_id"]
            item = InboxItem(object_id, r["kind"], r["socket_id"], json.loads(r["data"]), r["id"])
            found[object_id].append(item)
        return found

    async def published_between(
        self, object_id: str, after_seq: int, until_seq: int, tags: Sequence[str], limit: int
    ) -> list[PublishedMessage]:
        """The newest ``limit`` messages published after ``after_seq`` up to ``until_seq``
        with no tag or one of ``tags``, oldest first."""
        rows = await self._call(
            lambda c: c.fetch(
                queries.PUBLISHED_BETWEEN, object_id, after_seq, until_seq, list(tags), limit
            )
        )
        # Newest first from the query (it stops at the limit), oldest first to the caller.
        return [
            PublishedMessage(
                row["seq"], row["data"] if row["binary"] is None else None, row["binary"]
            )
            for row in reversed(rows)
        ]

    async def objects_with_inbox(self, limit: int = 1000) -> list[str]:
        """Objects with inbox rows that no live node but this one owns."""
        rows = await self._call(lambda c: c.fetch(queries.INBOX_OBJECTS, limit, self.node_id))
        return [r[0] for r in rows]

    async def nudge(self, object_ids: list[str]) -> None:
        """Wake the live owners of these objects (or this node, for those nobody live owns)
        now, as a flush that wrote inbox rows for them would."""
        await self._call(lambda c: c.fetchval(queries.WAKE, self.node_id, sorted(object_ids)))

    async def wake_on(self, node_id: str, object_ids: list[str], *, draining: bool = False) -> bool:
        """Wake the live owners of these objects, or ``node_id`` for those nobody live owns;
        False, and no NOTIFY, if ``node_id`` is not live (it stopped or died meanwhile), or
        is draining unless ``draining`` says that will do."""
        woken = await self._call(
            lambda c: c.fetchrow(queries.WAKE_ON, node_id, sorted(object_ids), draining)
        )
        return woken is not None

    async def outbox_after(
        self, position: int, limit: int, *, delivered: int = 0
    ) -> list[RemoteOutput]:
        """This node's outbox rows after ``position``, oldest first, at most ``limit``; in
        the same statement, the rows up to ``delivered`` are deleted."""
        args: tuple[int, ...]
        if delivered:
            query, args = queries.OUTBOX_AFTER_DELETING, (position, limit, delivered)
        else:
            query, args = queries.OUTBOX_AFTER, (position, limit)
        rows = await self._call(lambda c: c.fetch(query, self.node_id, *args))
        outputs: list[RemoteOutput] = []
        for row in rows:
            position = row["position"]
            if row["kind"] == FRAMES:
                outputs.extend(_remote_output(frame, position) for frame in row["frames"])
            else:
                outputs.append(_remote_output(row, position))
        return outputs

    async def outbox_delivered(self, position: int) -> None:
        """Delete this node's outbox rows up to ``position``: they were delivered."""
        await self._call(lambda c: c.execute(queries.OUTBOX_DELIVERED, self.node_id, position))

    async def stale_sockets(self) -> list[tuple[str, str]]:
        rows = await self._call(lambda c: c.fetch(queries.STALE_SOCKETS, self.node_id))
        return [(r[0], r[1]) for r in rows]

    async def due_alarms(self, horizon_seconds: float, limit: int = 100) -> list[tuple[str, int]]:
        rows = await self._call(
            lambda c: c.fetch(queries.DUE_ALARMS, horizon_seconds, limit, self.node_id)
        )
        return [(r[0], r[1]) for r in rows]

    async def ping(self) -> None:
        """Raise StoreUnavailableError unless the database answers (on a commit connection:
        a node whose general pool is exhausted is still healthy if it can commit)."""
        assert self._commit_pool is not None, "EventStore.open() was not awaited"
        await self._call(lambda c: c.fetchval(queries.PING), self._commit_pool)

    # -- notifications ------------------------------------------------------------------

    def listen(
        self,
        on_wake: Callable[[list[str] | None], None],
        on_connect: Callable[[], Awaitable[None]],
        *,
        on_outbox: Callable[[int], None] | None = None,
        probe_interval: float = 5.0,
    ) -> Listener:
        """Start the node's LISTEN connection, on its own channel (the wakes of the objects
        it owns or should claim); ``on_wake(None)`` means "poll everything", and
        ``on_outbox(position)`` that this node's outbox has rows up to ``position``."""

        def dispatch(notification: notifications.Notification) -> None:
            if isinstance(notification, notifications.Wake):
                if notification.object_ids:
                    on_wake(notification.object_ids)
            else:
                on_wake(None)
            if notification.position is not None and on_outbox is not None:
                on_outbox(notification.position)

        self._listener = Listener(
            self.dsn,
            notifications.channel_of(self.node_id),
            dispatch,
            on_connect,
            probe_interval=probe_interval,
            application_name=f"durable {self.node_id} listener",
        )
        self._listener.start()
        return self._listener

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        return await self._call(lambda c: c.fetchrow(query, *args))

    async def _call(
        self,
        operation: Callable[[asyncpg.Connection], Awaitable[T]],
        pool: connections.Pool | None = None,
    ) -> T:
        pool = pool or self._pool
        assert pool is not None, "EventStore.open() was not awaited"
        return await pool.run(operation)


def _claim(object_id: str, row: asyncpg.Record) -> Claim:
    return Claim(object_id, row["binding"], row["name"], row["owner_epoch"], row["last_seq"])


#: The kind of an outbox row that holds many rows, all with its position (durable_route_v3).
FRAMES = "frames"


def _remote_output(row: asyncpg.Record, position: int) -> RemoteOutput:
    """An outbox row, or one of a ``frames`` row's (an outbox record of the same fields)."""
    reply = row["reply"]
    return RemoteOutput(
        row["socket_id"],
        row["kind"],
        row["text"],
        row["data"],
        row["close_code"],
        row["close_reason"],
        position,
        request_id=row["request_id"],
        reply=None if reply is None else json.loads(reply),
    )
