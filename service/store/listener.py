"""The node's one LISTEN connection: outside the pool, probed, and re-established on loss.

A notification is only a hint (PITFALLS 3): after every (re)connect the owner is told to
catch up from the table, and a slow poll runs regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
import pydantic

from service.backoff import Backoff
from service.store import notifications

log = logging.getLogger(__name__)


class Listener:
    """LISTEN on one channel; call ``on_notification`` per payload, ``on_connect`` per link."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notification: Callable[[notifications.Notification], None],
        on_connect: Callable[[], Awaitable[None]],
        *,
        probe_interval: float = 5.0,
        probe_timeout: float = 3.0,
        application_name: str = "durable listener",
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._on_notification = on_notification
        self._on_connect = on_connect
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        #: How the connection shows in pg_stat_activity (to find it, or to end it).
        self._application_name = application_name[:63]
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()
        self.connection: asyncpg.Connection | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()

    async def _run(self) -> None:
        backoff = Backoff(0.1, 2.0)
        while True:
            try:
                await self._connect()
                backoff.reset()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("listener connection lost: %s", error, extra={"action": "listen"})
            await self._drop()
            await asyncio.sleep(backoff.next())

    async def _connect(self) -> None:
        self._lost.clear()
        connection = await asyncpg.connect(
            self._dsn,
            timeout=self._probe_timeout,
            server_settings={"application_name": self._application_name},
        )
        # Held from the start, so that _drop() closes it even if we are stopped (cancelled)
        # before LISTEN has answered.
        self.connection = connection
        connection.add_termination_listener(lambda _conn: self._lost.set())
        await connection.add_listener(self._channel, self._dispatch)
        self.connected.set()
        log.info("listening on %s", self._channel, extra={"action": "listen"})
        await self._on_connect()

    async def _watch(self) -> None:
        """Probe the link; asyncpg may not notice a dead peer until a TCP timeout."""
        assert self.connection is not None
        while not self._lost.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._probe_interval)
                break
            await self.connection.fetchval("SELECT 1", timeout=self._probe_timeout)
        raise ConnectionError("the listening connection was terminated")

    async def _drop(self) -> None:
        self.connected.clear()
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    def _dispatch(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notification = notifications.parse(payload)
        except pydantic.ValidationError:
            log.warning("ignoring notification %r", payload[:200], extra={"action": "listen"})
            return
        self._on_notification(notification)
