"""One live node per node id: a session advisory lock, held on a connection of its own.

Sockets are recorded with the id of the node that holds them, and a node closes in the log
the sockets its id held in a previous run. A second node started with the id of a live one
would close the first one's sockets: so a node takes its id before anything else, and
refuses to start if it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from service.ports.errors import NodeIdInUseError
from service.store import queries

log = logging.getLogger(__name__)


class NodeLock:
    """Holds the advisory lock of a node id; takes it again after the link is lost."""

    def __init__(self, dsn: str, node_id: str, *, probe_interval: float = 5.0) -> None:
        self._dsn = dsn
        self._node_id = node_id
        self._probe_interval = probe_interval
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def acquire(self) -> None:
        """Take the id now; NodeIdInUseError if a live node holds it."""
        await self._take()
        self._task = asyncio.create_task(self._keep(), name="node-lock")

    async def _take(self) -> None:
        connection = await asyncpg.connect(
            self._dsn,
            timeout=10,
            server_settings={"application_name": f"durable {self._node_id}"[:63]},
        )
        try:
            if not await connection.fetchval(queries.TAKE_NODE_ID, self._node_id):
                holder = await connection.fetchrow(queries.NODE_ID_HOLDER, self._node_id)
                raise NodeIdInUseError(_in_use(self._node_id, holder))
        except BaseException:
            await connection.close()
            raise
        self._connection = connection

    async def _keep(self) -> None:
        """Probe the connection; when it is lost, take the id again on a new one."""
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                assert self._connection is not None
                await self._connection.fetchval(queries.PING, timeout=self._probe_interval)
                continue
            except Exception as error:
                log.warning("lost the node id's lock: %r", error, extra={"action": "node"})
            await self._drop()
            try:
                await self._take()
                log.info("holding the node id again", extra={"action": "node"})
            except NodeIdInUseError as error:
                log.error("%s", error, extra={"action": "node"})
            except Exception as error:
                log.warning("cannot take the node id yet: %r", error, extra={"action": "node"})

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)


def _in_use(node_id: str, holder: asyncpg.Record | None) -> str:
    where = ""
    if holder is not None:
        address = holder["client_addr"] or "a local socket"
        where = f" (connected from {address} since {holder['backend_start']:%Y-%m-%d %H:%M:%S})"
    return (
        f"node id {node_id!r} is held by a running node on this database{where}; "
        "give this node another id with --node-id NAME or DURABLE_NODE_ID=NAME"
    )
