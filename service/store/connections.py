"""Borrowing pool connections: bounded waits, one error type per cause, and the database's
health as the node last saw it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from service.ports.errors import (
    DatabaseUnreachableError,
    PoolExhaustedError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


#: Errors of a connection that was lost while in use (its backend was terminated, the link
#: broke): the next connection may work at once, so they say nothing of the server's health.
LOST_LINK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # TimeoutError and ConnectionError included
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # The server ended the session (pg_terminate_backend, a shutdown).
    asyncpg.exceptions.OperatorInterventionError,
    # Raised when a pooled connection's backend was terminated mid-protocol.
    asyncpg.exceptions.InternalClientError,
)


#: Seconds between two warnings that a pool is exhausted (each time is counted in metrics).
WARN_EVERY = 10.0


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pools' reset on release: nothing beyond what asyncpg always does (a ROLLBACK of a
    transaction left open).

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` at every release: one more round trip per borrow, a tenth of a busy node's time.
    The pools' connections keep no session state to undo: no session advisory lock (the
    flush's is a transaction lock), no cursor outside a transaction, no LISTEN (the listener
    has a connection of its own) and no SET (settings are the connection's, from its start).
    """


class Health:
    """Whether the database accepts connections, as the node's last attempts found it.

    Only a failure to connect marks it down: a connection lost in use (a terminated backend)
    is usually followed by a new one that works. Any completed operation marks it up.
    """

    def __init__(self) -> None:
        #: ``time.monotonic()`` of the first refused connection of the current outage.
        self.down_since: float | None = None
        self.reason = ""

    def refused(self, reason: str) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.reason = reason

    def answered(self) -> None:
        self.down_since = None
        self.reason = ""


class Pool:
    """An asyncpg pool with a bounded wait for a connection, reporting to a Health."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        health: Health,
        *,
        acquire_timeout: float,
        on_exhausted: Callable[[str], None] | None = None,
    ) -> None:
        self.raw = pool
        self.name = name
        self.health = health
        self.acquire_timeout = acquire_timeout
        self._on_exhausted = on_exhausted
        self._warned_at = -WARN_EVERY

    async def close(self, timeout: float) -> None:
        """Close every connection politely, or cut them after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self.raw.close(), timeout)
        except TimeoutError:
            log.warning("closing the %s pool timed out: cutting its connections", self.name)
            self.raw.terminate()

    def size(self) -> int:
        return int(self.raw.get_max_size())

    def in_use(self) -> int:
        return int(self.raw.get_size() - self.raw.get_idle_size())

    async def run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``operation`` on a borrowed connection, for a read or a statement of its own: a
        full pool or a lost database is a StoreUnavailableError that says which."""
        try:
            async with self.borrow() as connection:
                return await operation(connection)
        except PoolExhaustedError as error:
            raise StoreUnavailableError(f"no database connection is free: {error}") from error
        except LOST_LINK_ERRORS as error:
            reason = str(error) or type(error).__name__
            raise StoreUnavailableError(f"the database is unavailable: {reason}") from error

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection; whatever stops us getting one is one of the two errors above.

        Its release never raises: once the block has run, its outcome is decided (a COMMIT
        that returned has committed), and a release that fails only means asyncpg dropped a
        broken connection, which it has then terminated.
        """
        connection = await self._acquire()
        answered = False
        try:
            yield connection
            answered = True
        except LOST_LINK_ERRORS:
            raise
        except Exception:
            answered = True  # the server answered, with an error of the statement
            raise
        finally:
            if answered:
                self.health.answered()
            try:
                await self.raw.release(connection)
            except Exception as error:
                log.debug("dropping a broken connection: %r", error, extra={"action": "pool"})

    async def _acquire(self) -> asyncpg.Connection:
        try:
            return await self.raw.acquire(timeout=self.acquire_timeout)
        except TimeoutError as error:
            if self.raw.get_size() >= self.raw.get_max_size() and not self.raw.get_idle_size():
                if self._on_exhausted is not None:
                    self._on_exhausted(self.name)
                exhausted = PoolExhaustedError(
                    f"all {self.size()} connections of the {self.name} pool stayed busy for "
                    f"{self.acquire_timeout:g} s"
                )
                now = time.monotonic()
                if now - self._warned_at >= WARN_EVERY:
                    self._warned_at = now
                    log.warning("%s", exhausted, extra={"action": "pool"})
                raise exhausted from error
            self.health.refused("connecting timed out")
            raise DatabaseUnreachableError("connecting to the database timed out") from error
        except Exception as error:
            self.health.refused(str(error) or type(error).__name__)
            raise DatabaseUnreachableError(str(error)) from error
