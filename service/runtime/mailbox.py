"""An object's mailbox: the deliveries waiting for it, run one at a time, in order.

What it guarantees:

- one turn at a time, in the order work was queued (per-socket order, DESIGN invariant 9);
  none starts while a ``blockConcurrencyWhile()`` callback runs;
- the work that waited for an object is its oldest: inbox rows read when it loads go ahead of
  everything queued, the work the node kept for it (queued when it was registered) next, and
  what arrived since after that;
- an inbox row is queued once per activation, until the commit consuming it lands; one whose
  commits failed too often is consumed without running a handler (dropped, and logged);
- a fault of the runtime inside a turn resets the object rather than wedge the mailbox.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from service.api.errors import ObjectResetError
from service.api.limits import Limits
from service.ports.records import InboxItem
from service.runtime import delivery as delivery_module
from service.runtime.delivery import Delivery
from service.runtime.turn import ResetRequested

log = logging.getLogger(__name__)


class Runner(Protocol):
    """The object whose mailbox this is: it runs each delivery as a turn."""

    #: The run loop goes on while this is "running".
    status: str

    async def run_turn(self, delivery: Delivery) -> None: ...

    def reset(self, reason: str) -> None: ...

    def log_extra(self, action: str = "activation") -> dict[str, str]: ...


class Mailbox:
    """Deliveries in arrival order, the run loop, and what holds it (blockers)."""

    def __init__(
        self,
        runner: Runner,
        limits: Limits,
        *,
        max_attempts: int,
        inbox_attempts: Mapping[int, int],
    ) -> None:
        self._runner = runner
        self._limits = limits
        self._max_attempts = max_attempts
        #: Failed commits per inbox row, across activations of the node.
        self._inbox_attempts = inbox_attempts
        self._queue: collections.deque[Delivery] = collections.deque()
        self._wakeup = asyncio.Event()
        self._seen_inbox: set[int] = set()
        #: Inbox reads in flight, and the rows consumed while one was: a read that began
        #: before the commit consuming some rows may return them after it, when they are no
        #: longer in ``_seen_inbox``; they must not run again.
        self._reads = 0
        self._consumed_meanwhile: set[int] = set()
        self._blockers: list[asyncio.Future[Any]] = []
        self._block_depth = 0
        #: A turn is running.
        self.busy = False
        self.last_active = time.monotonic()

    @property
    def queued(self) -> bool:
        """Whether deliveries wait to run."""
        return bool(self._queue)

    @property
    def blocked(self) -> bool:
        """Whether a ``blockConcurrencyWhile()`` callback holds the mailbox."""
        return bool(self._blockers)

    def enqueue(self, delivery: Delivery) -> None:
        self._queue.append(delivery)
        self.last_active = time.monotonic()
        self._wakeup.set()

    def take_all(self) -> list[Delivery]:
        """Empty the mailbox: the deliveries still queued, oldest first."""
        waiting = list(self._queue)
        self._queue.clear()
        return waiting

    def wake(self) -> None:
        """Let the run loop look at the object's status again."""
        self._wakeup.set()

    # -- the inbox ----------------------------------------------------------------------

    def reading_inbox(self) -> None:
        """An inbox read begins; ``queue_inbox`` (or ``inbox_read_failed``) ends it."""
        self._reads += 1

    def inbox_read_failed(self) -> None:
        self._end_read()

    def _end_read(self) -> None:
        # Every read is begun (``reading_inbox``): a count gone negative would stop
        # ``consumed`` from remembering rows for the reads still out.
        assert self._reads > 0, "an inbox read ended that was never begun"
        self._reads -= 1
        if self._reads == 0:
            self._consumed_meanwhile.clear()

    def queue_inbox(self, items: list[InboxItem], *, first: bool) -> None:
        """Queue the rows of a read not seen yet; ``first``: oldest first, before newer
        work."""
        consumed = self._consumed_meanwhile
        fresh = [
            delivery_module.from_inbox(item)
            for item in items
            if item.id is not None and item.id not in self._seen_inbox and item.id not in consumed
        ]
        self._end_read()
        limit = self._max_attempts
        for delivery in fresh:
            assert delivery.inbox_id is not None
            self._seen_inbox.add(delivery.inbox_id)
            # The row's failed commits so far, in earlier activations of this node too: a
            # refused commit adds one to this count (not to one starting again from zero).
            failed = self._inbox_attempts.get(delivery.inbox_id, 0)
            delivery.attempts = max(delivery.attempts, failed)
            if delivery.attempts >= limit:
                log.error(
                    "dropping inbox row %d (%s) after %d failed commits",
                    delivery.inbox_id,
                    delivery.kind,
                    limit,
                    extra=self._runner.log_extra(),
                )
                delivery.kind = "drop"
        if first:
            # Oldest first: the inbox, then the mailbox (the work that waited for this
            # activation, given to it when it was registered, then what arrived since).
            self._queue.extendleft(reversed(fresh))
        else:
            self._queue.extend(fresh)
        if fresh:
            self._wakeup.set()

    def consumed(self, inbox_ids: Iterable[int]) -> None:
        """The commit consuming these rows landed: they are gone from the inbox."""
        for inbox_id in inbox_ids:
            self._seen_inbox.discard(inbox_id)
            if self._reads:
                self._consumed_meanwhile.add(inbox_id)

    # -- the run loop -------------------------------------------------------------------

    async def run(self) -> None:
        runner = self._runner
        while runner.status == "running":
            if self._blockers:
                await self.unblocked()
                continue
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delivery = self._queue.popleft()
            self.busy = True
            try:
                await runner.run_turn(delivery)
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                # A fault of the runtime itself: never leave the object wedged behind it.
                log.exception("delivery failed", extra=runner.log_extra())
                delivery.fail(ObjectResetError(f"internal error: {error!r}"))
                runner.reset(f"internal error: {error!r}")
            finally:
                self.busy = False
                self.last_active = time.monotonic()

    # -- blockConcurrencyWhile ----------------------------------------------------------

    def block_while(self, callback: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        """Run ``callback``; no delivery starts until it is done."""
        if self._block_depth >= self._limits.max_block_concurrency_depth:
            raise ObjectResetError("blockConcurrencyWhile() calls are nested too deeply.")
        future = asyncio.ensure_future(self._blocked(callback))
        self._blockers.append(future)
        return future

    async def _blocked(self, callback: Callable[[], Awaitable[Any]]) -> Any:
        self._block_depth += 1
        try:
            return await asyncio.wait_for(_call(callback), self._limits.block_concurrency_timeout)
        except TimeoutError:
            message = (
                "A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
                "The call was canceled and the Durable Object was reset."
            )
            self._runner.reset(message)
            raise ObjectResetError(message) from None
        except ResetRequested as reset:
            self._runner.reset(reset.reason)
            raise ObjectResetError(reset.reason) from None
        except Exception as error:
            self._runner.reset(f"blockConcurrencyWhile() callback failed: {error!r}")
            raise
        finally:
            self._block_depth -= 1

    async def unblocked(self) -> None:
        """Wait until no ``blockConcurrencyWhile()`` callback holds the mailbox."""
        while self._blockers:
            await asyncio.gather(*self._blockers, return_exceptions=True)
            self._blockers = [b for b in self._blockers if not b.done()]

    def cancel_blockers(self) -> None:
        for future in self._blockers:
            future.cancel()


async def _call(callback: Callable[[], Any]) -> Any:
    result = callback()
    if inspect.isawaitable(result):
        result = await result
    return result
