"""The output gate: a turn's socket output waits for its commit and is released in order.

What it guarantees (DESIGN invariants 1, 8 and 9):

- persist first: a frame, a close or an accepted socket reaches the gateway only once the
  commit of the turn that made it, and of every turn before it, has landed;
- exactly once: the output of a committed turn is always released, that of a turn whose
  commit failed never is, and the socket delivery behind a failed turn is kept to be handled
  again (``redo``), since what it did was decided on state that is then rolled back;
- per-socket order: output is released in turn order, never ahead of an earlier turn's.

Commits are pipelined: each turn's append is handed to the log without waiting for the one
before, so several may be in flight. They settle in order, and fail in order (each append
expects the seq the one before it ends at), which is what makes the above hold.

A socket accepted to resume gets the messages it missed before anything else: its turn's
output is released only once that turn has committed, so every event up to its accept is in
the log by then, and the gate reads the missed messages there. Meanwhile, output released
for that socket waits behind the read, in order; other sockets' output goes on. A message
published before the accept is in the read, one published after it is sent live: none is
missed, none is sent twice.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Protocol, cast

from service.api import published
from service.ports.event_log import PublishedLog
from service.ports.socket_output import SocketOutput
from service.runtime import missed_messages, storage_errors
from service.runtime.delivery import SOCKET_KINDS, Delivery
from service.runtime.turn import Output, Resume, Turn

log = logging.getLogger(__name__)

#: A finished turn's output and the commit it waits for (None: none), with its delivery if
#: a failure of that commit means handling the delivery again.
Held = tuple[asyncio.Future[None] | None, list[Output], Delivery | None]


class Owner(Protocol):
    """The object whose output this is: the gateway files an accepted socket under it."""

    key: str
    #: Known once the object is claimed, before any turn runs.
    binding: str


class OutputGate:
    """One object's commits in flight, and the output held behind them."""

    def __init__(self, owner: Owner, output: SocketOutput, published_log: PublishedLog) -> None:
        self._owner = owner
        self._output = output
        self._published_log = published_log
        #: Sockets whose missed messages are being read, with the output released for them
        #: meanwhile, in order: it follows the replay.
        self._resuming: dict[str, list[Output]] = {}
        #: Those reads.
        self._reads: set[asyncio.Future[None]] = set()
        #: Finished turns whose output waits for a commit, in turn order (see pump).
        self._held: collections.deque[Held] = collections.deque()
        #: Commits not yet settled.
        self.pending: set[asyncio.Future[None]] = set()
        self._last_commit: asyncio.Future[None] | None = None
        #: Deliveries whose turns did not commit: handled again after a reset, in order.
        self.redo: list[Delivery] = []

    @property
    def holding(self) -> bool:
        """Whether some output still waits for its commit, or for a resume's read."""
        return bool(self._held) or bool(self._resuming)

    def track(self, commit: asyncio.Future[None]) -> None:
        """A turn's commit was handed to the log: later output waits for it too.

        Whoever handed it over calls ``settled`` and then ``pump`` when it settles.
        """
        self.pending.add(commit)
        self._last_commit = commit

    def settled(self, commit: asyncio.Future[None]) -> None:
        self.pending.discard(commit)

    def last_pending(self) -> asyncio.Future[None] | None:
        """The newest commit, while it has not settled: what output made now waits for."""
        last = self._last_commit
        return last if last is not None and not last.done() else None

    def hold(self, turn: Turn, gate: asyncio.Future[None] | None, *, committing: bool) -> None:
        """Queue a finished turn's output behind ``gate`` (its own commit if ``committing``,
        else the newest one pending, or None), and release what may go."""
        delivery = turn.delivery
        # A socket's delivery is redone if its turn's gate fails, whether or not the turn
        # wrote anything: what it did was decided on state that is then rolled back. So is
        # one from the inbox (a request or call routed here): its row is read again, and the
        # node must hear how often its commit was refused (past a limit, it is dropped).
        redo = (
            delivery
            if delivery is not None
            and (delivery.kind in SOCKET_KINDS or delivery.inbox_id is not None)
            else None
        )
        if turn.outputs or turn.accepted or (redo is not None and gate is not None):
            outputs = turn.outputs
            if turn.accepted:
                outputs = [("expect", sid, hib) for sid, hib in turn.accepted] + outputs
            self._held.append((gate, outputs, redo))
            # A gate of this turn's own commit pumps when it settles (one callback, not two).
            if gate is not None and not gate.done() and not committing:
                gate.add_done_callback(lambda _f: self.pump())
            self.pump()

    def hold_output(self, output: Output) -> None:
        """Output made outside a turn (by a background task): behind the newest commit."""
        gate = self.last_pending()
        self._held.append((gate, [output], None))
        if gate is not None:
            gate.add_done_callback(lambda _f: self.pump())
        self.pump()

    def pump(self) -> None:
        """Release held output in turn order, as far as the commits behind it have landed.

        A turn whose gate failed has its output dropped and its delivery kept for redoing;
        gates fail in order (each append expects the one before it), so no committed
        turn's output is ever dropped, and none is released before an earlier turn's.
        """
        while self._held:
            gate, outputs, redo = self._held[0]
            if gate is not None and not gate.done():
                return
            self._held.popleft()
            if gate is not None and (gate.cancelled() or gate.exception() is not None):
                if redo is not None:
                    self.redo.append(redo)
                continue
            self._release(outputs)

    def _release(self, outputs: list[Output]) -> None:
        output = self._output
        resuming = self._resuming
        for item in outputs:
            kind, socket_id, payload = item
            if resuming and socket_id in resuming:
                resuming[socket_id].append(item)  # behind the socket's missed messages
            elif kind == "send":
                output.send(socket_id, payload)  # type: ignore[arg-type]
            elif kind == "publish":
                output.send(socket_id, cast(tuple[Any, int], payload)[0])
            elif kind == "close":
                code, reason = cast(tuple[int | None, str], payload)
                output.close(socket_id, code, reason)
            elif kind == "resume":
                self._resume(socket_id, cast(Resume, payload))
            else:
                owner = self._owner
                output.expect(socket_id, owner.key, owner.binding, bool(payload))

    def _resume(self, socket_id: str, resume: Resume) -> None:
        """Send a socket the messages it missed, before the output that follows for it."""
        if resume.after > resume.last_seq:
            reason = published.ahead_reason(resume.after, resume.last_seq)
            self._output.close(socket_id, published.RESUME_AHEAD_CODE, reason)
        elif resume.after < resume.last_seq:
            self._resuming[socket_id] = []
            read = asyncio.ensure_future(self._replay(socket_id, resume))
            self._reads.add(read)
            read.add_done_callback(self._reads.discard)

    async def _replay(self, socket_id: str, resume: Resume) -> None:
        output = self._output
        try:
            missed = await missed_messages.frames(
                self._published_log,
                self._owner.key,
                resume.after,
                resume.last_seq,
                resume.tags,
                resume.limit,
            )
        except Exception as error:
            log.warning(
                "could not read the missed messages of a resuming socket: %s",
                error,
                extra={"object_id": self._owner.key, "action": "resume"},
            )
            output.close(socket_id, published.RESUME_FAILED_CODE, published.RESUME_FAILED_REASON)
        else:
            for frame in missed:
                output.send(socket_id, frame)
        self._release(self._resuming.pop(socket_id))

    async def sync(self) -> None:
        """Wait for every commit handed over so far; raise the user's error if one failed."""
        pending = list(self.pending)
        if pending:
            results = await asyncio.gather(*pending, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise storage_errors.for_user(result)

    async def settle(self) -> None:
        """Wait until no commit nor resume's read is in flight, whatever their outcomes."""
        while self.pending or self._reads:
            await asyncio.gather(*self.pending, *self._reads, return_exceptions=True)
