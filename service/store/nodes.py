"""This node's row in ``nodes`` (join, heartbeat, leave) and the sweep of dead nodes.

A node id is taken by writing the row, not by an advisory lock. A session lock says only
that some session holds it: PostgreSQL frees it when it notices the session is gone, which
can take as long as TCP does, and a paused holder keeps it while it can no longer act. What
the cluster needs is the opposite: a row that says until when its holder may act (its
heartbeat plus its lease timeout), which every claim reads, and an owner epoch on every
append to fence whoever acts past it. So a live row (fresh heartbeat, not stopped, not
swept) refuses a second node of its id, and a dead one's id may be taken again.

Heartbeats go over a connection of their own: a node whose pools are busy or blocked
(wakes waiting on locks, a flood of work) must still say it is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from typing import Any

import asyncpg

from service.ports.cluster import LiveHost, SweptNode
from service.ports.errors import NodeIdInUseError, StoreUnavailableError
from service.store import connections, queries

log = logging.getLogger(__name__)

# Take the node id for this run: a new row, or the row of a run that is no longer live
# (stopped, swept, or silent past its lease). No row while a live node holds the id. This
# version reads outbox rows that carry many frames (durable_route_v3).
JOIN = """
INSERT INTO nodes AS n (node_id, address, role, lease_timeout, reads_frames)
VALUES ($1, $2, $3, make_interval(secs => $4), true)
ON CONFLICT (node_id) DO UPDATE
   SET address = EXCLUDED.address, role = EXCLUDED.role,
       lease_timeout = EXCLUDED.lease_timeout, reads_frames = true,
       started_at = now(), heartbeat_at = now(),
       stopped_at = NULL, swept_at = NULL, swept_by = NULL, draining_at = NULL
 WHERE n.stopped_at IS NOT NULL OR n.swept_at IS NOT NULL
    OR n.heartbeat_at + n.lease_timeout <= now()
RETURNING started_at
"""

# The live node that holds an id, for the message that refuses a second one.
HOLDER = """
SELECT address, started_at, extract(epoch FROM now() - heartbeat_at)::float8 AS silent
  FROM nodes WHERE node_id = $1
"""

# Renew this run's lease (its started_at names the run). No row once a survivor swept the
# node, it stopped, or a newer run took the id: this run is over.
HEARTBEAT = """
UPDATE nodes SET heartbeat_at = now()
 WHERE node_id = $1 AND started_at = $2 AND stopped_at IS NULL AND swept_at IS NULL
RETURNING heartbeat_at
"""

# The address the node's HTTP server took once it listens (a port of 0 is known only then).
SERVING_AT = """
UPDATE nodes SET address = $3 WHERE node_id = $1 AND started_at = $2
"""

# This run begins to hand its objects over: from now on no other node sends it an object
# nobody owns (it stays live, and keeps what it owns, until it stops or its lease ends).
DRAIN = """
UPDATE nodes SET draining_at = coalesce(draining_at, now())
 WHERE node_id = $1 AND started_at = $2 AND stopped_at IS NULL
"""

# A graceful stop: what the node still owns may be claimed by anyone from now on.
LEAVE = """
UPDATE nodes SET stopped_at = now()
 WHERE node_id = $1 AND started_at = $2 AND stopped_at IS NULL
"""

# Take one node to sweep: not live, not swept, not this one. SKIP LOCKED: two survivors never
# take one row; a heartbeat that commits first keeps its node (a locked row is re-checked).
TAKE_DEAD = """
UPDATE nodes AS n SET swept_at = now(), swept_by = $1
 WHERE n.node_id = (SELECT d.node_id FROM nodes AS d
                     WHERE d.swept_at IS NULL AND d.node_id <> $1
                       AND (d.stopped_at IS NOT NULL
                            OR d.heartbeat_at + d.lease_timeout <= now())
                     ORDER BY d.heartbeat_at
                     LIMIT 1
                       FOR UPDATE SKIP LOCKED)
RETURNING n.node_id
"""

# A close for each socket the swept node left open, unless its end already waits in the
# inbox; the object takes it like a close its own node reported.
CLOSE_SOCKETS = """
INSERT INTO inbox (object_id, kind, socket_id, data)
SELECT w.object_id, 'close', w.socket_id, $2::jsonb
  FROM websockets AS w
 WHERE w.node = $1 AND w.closed_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM inbox AS i
                    WHERE i.object_id = w.object_id AND i.socket_id = w.socket_id
                      AND i.kind IN ('close', 'error'))
 ORDER BY w.object_id, w.connected_at
RETURNING object_id
"""

# Output for sockets of nodes that are gone (swept, this one among them, or stopped): nobody
# delivers it. durable_route_v3 writes none for such a node, but a flush that read its row
# before the sweep or stop committed may have written some since; a later sweep takes those.
FORGET_OUTBOX = """
DELETE FROM outbox AS x
 USING nodes AS n
 WHERE x.node = n.node_id AND (n.swept_at IS NOT NULL OR n.stopped_at IS NOT NULL)
"""

# The live nodes that run objects, and whether each is on its way out: where a gateway,
# or a node handing its objects over, sends an object nobody owns.
LIVE_HOSTS = """
SELECT node_id, draining_at IS NOT NULL AS draining
  FROM live_nodes WHERE role IN ('host', 'all') ORDER BY node_id
"""

# Forget nodes gone (stopped, or silent past their lease) for longer than the retention,
# unless something still names them: an object they own (whoever claims it must see that
# their lease ended), outbox rows for them, a socket they held that is open in the log
# (their sweep closes it), or a request in the inbox whose reply goes to them.
PRUNE = """
DELETE FROM nodes AS n
 WHERE coalesce(n.stopped_at, n.heartbeat_at + n.lease_timeout)
       < now() - make_interval(secs => $1)
   AND NOT EXISTS (SELECT 1 FROM objects AS o WHERE o.owner_node = n.node_id)
   AND NOT EXISTS (SELECT 1 FROM outbox AS x WHERE x.node = n.node_id)
   AND NOT EXISTS (SELECT 1 FROM websockets AS w
                    WHERE w.node = n.node_id AND w.closed_at IS NULL)
   AND NOT EXISTS (SELECT 1 FROM inbox AS i WHERE i.data->>'reply_to' = n.node_id)
RETURNING n.node_id
"""

# Objects the swept node owned that have inbox rows: their wakes went to it, and were lost.
ORPHANED_INBOX = """
SELECT DISTINCT i.object_id
  FROM inbox AS i JOIN objects AS o USING (object_id)
 WHERE o.owner_node = $1
"""


class NodeRow:
    """The node's own row, on a connection of its own; sweeps on the general pool."""

    def __init__(self, dsn: str, node_id: str, pool: connections.Pool, *, timeout: float) -> None:
        self._dsn = dsn
        self._node_id = node_id
        self._pool = pool
        self._timeout = timeout
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        #: started_at of this run's row: its heartbeats and its stop name it.
        self._started_at: datetime | None = None

    async def join(self, address: str | None, role: str, lease_timeout: float) -> None:
        started = await self._run(JOIN, self._node_id, address, role, lease_timeout)
        if started is None:
            holder = await self._run_row(HOLDER, self._node_id)
            raise NodeIdInUseError(_in_use(self._node_id, holder))
        self._started_at = started

    async def heartbeat(self) -> bool:
        assert self._started_at is not None, "join() first"
        return await self._run(HEARTBEAT, self._node_id, self._started_at) is not None

    async def serving_at(self, address: str) -> None:
        assert self._started_at is not None, "join() first"
        await self._run(SERVING_AT, self._node_id, self._started_at, address)

    async def drain(self) -> None:
        if self._started_at is not None:
            await self._run(DRAIN, self._node_id, self._started_at)

    async def leave(self) -> None:
        if self._started_at is not None:
            await self._run(LEAVE, self._node_id, self._started_at)

    async def prune(self, retention: float) -> list[str]:
        # On the general pool: its reads of objects and the inbox must not hold heartbeats.
        async def prune(connection: asyncpg.Connection) -> list[str]:
            return [r[0] for r in await connection.fetch(PRUNE, retention)]

        try:
            return await self._pool.run(prune)
        except asyncpg.PostgresError as error:
            raise StoreUnavailableError(f"the database refused to prune nodes: {error}") from error

    async def sweep_dead_node(self, close: dict[str, Any]) -> SweptNode | None:
        async def sweep(connection: asyncpg.Connection) -> SweptNode | None:
            async with connection.transaction():
                dead = await connection.fetchval(TAKE_DEAD, self._node_id)
                if dead is None:
                    return None
                closed = await connection.fetch(CLOSE_SOCKETS, dead, json.dumps(close))
                await connection.execute(FORGET_OUTBOX)
                orphaned = await connection.fetch(ORPHANED_INBOX, dead)
                woken = sorted({r[0] for r in closed} | {r[0] for r in orphaned})
                if woken:
                    await connection.fetchval(queries.WAKE, self._node_id, woken)
                return SweptNode(dead, len(closed), len(woken))

        return await self._pool.run(sweep)

    async def live_hosts(self) -> list[LiveHost]:
        return [LiveHost(r["node_id"], r["draining"]) for r in await self._run_rows(LIVE_HOSTS)]

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    # -- the connection -----------------------------------------------------------------

    async def _run(self, query: str, *args: Any) -> Any:
        """``fetchval`` on the node's connection, (re)connecting first if needed."""
        row = await self._run_row(query, *args)
        return None if row is None else row[0]

    async def _run_row(self, query: str, *args: Any) -> asyncpg.Record | None:
        rows = await self._run_rows(query, *args)
        return rows[0] if rows else None

    async def _run_rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._lock:
            try:
                connection = await self._connect()
                rows: list[asyncpg.Record] = await connection.fetch(
                    query, *args, timeout=self._timeout
                )
                return rows
            except asyncio.CancelledError:
                self._drop()  # cut off mid-statement (a heartbeat out of time): start afresh
                raise
            except (*connections.LOST_LINK_ERRORS, asyncpg.PostgresError) as error:
                self._drop()
                reason = str(error) or type(error).__name__
                raise StoreUnavailableError(f"the database is unavailable: {reason}") from error

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(
                self._dsn,
                timeout=self._timeout,
                server_settings={"application_name": f"durable {self._node_id} node"[:63]},
            )
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()


def _in_use(node_id: str, holder: asyncpg.Record | None) -> str:
    where = ""
    if holder is not None:
        address = holder["address"] or "an unknown address"
        where = (
            f" (serving {address} since {holder['started_at']:%Y-%m-%d %H:%M:%S}, last "
            f"heartbeat {holder['silent']:.1f} s ago)"
        )
    return (
        f"node id {node_id!r} is held by a running node on this database{where}; "
        "give this node another id with --node-id NAME or DURABLE_NODE_ID=NAME, or leave it "
        "unset for one of its own"
    )
