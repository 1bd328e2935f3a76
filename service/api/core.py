"""The port through which the API reaches the object's runtime (implemented by an activation).

The API validates arguments and raises the reference errors; the core records events, gates
output and owns the object's lifecycle.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn, Protocol

from service.api.ids import DurableObjectId
from service.api.limits import Limits
from service.events.fold import ObjectState
from service.events.types import Event, MessagePublished


class ObjectCore(Protocol):
    """What an object's ctx, storage and sockets need from the runtime."""

    object_id: DurableObjectId
    state: ObjectState
    limits: Limits
    #: Socket handles by id, so that the same handle is handed out every time. They are
    #: ``service.api.websocket.WebSocket``s, which that module alone makes and reads
    #: (``websocket.handle_of``); typed loosely here so that the port does not import it.
    handles: dict[str, Any]
    #: True while the user's constructor runs.
    in_constructor: bool
    has_alarm_handler: bool
    #: URL of the request being handled, if any (kept with accepted sockets).
    current_url: str | None
    #: The object's binding (known once it is claimed, before any user code runs).
    binding: str
    #: Objects waiting for the RPC call being handled to return (its caller last), each in
    #: a turn of its own; empty outside such a call.
    call_waiting: tuple[str, ...]

    def new_socket_id(self) -> str:
        """The id of a new WebSocketPair's sockets (random; a rerun reuses the recorded ones)."""

    def record(self, event: Event) -> None:
        """Apply an event to the state and add it to the current turn's commit."""

    def send(self, socket_id: str, data: str | bytes) -> None:
        """Send a frame once everything recorded so far is committed."""

    def close_socket(self, socket_id: str, code: int | None, reason: str) -> None:
        """Close a connection once everything recorded so far is committed."""

    def publish(self, event: MessagePublished, frame: str | bytes, socket_ids: list[str]) -> int:
        """Record a published message and send its frame (built for the seq it gets, the
        next one) to these sockets, as ``send`` does; return its seq."""

    def resume(self, socket_id: str, after: int, last_seq: int) -> None:
        """Before anything else sent to this socket (accepted in this turn), send it the
        messages published after seq ``after``, up to ``last_seq``, that its tags select."""

    def auto_response_timestamp(self, socket_id: str) -> datetime | None: ...

    def savepoint(self) -> int:
        """A mark in the current turn to roll back to."""

    def rollback_to(self, mark: int) -> None: ...

    def sync(self) -> Awaitable[None]:
        """Resolves when every event recorded so far is durable."""

    def commit_so_far(self) -> Awaitable[None]:
        """Commit the current turn's events so far, now; resolves once they are durable.

        No rollback takes them back afterwards."""

    def seq_at_time(self, at: datetime) -> Awaitable[int]:
        """The object's last seq recorded at or before ``at`` (0: none)."""

    def abort(self, reason: str | None) -> NoReturn: ...

    def block_concurrency_while(
        self, callback: Callable[[], Awaitable[Any]]
    ) -> asyncio.Future[Any]: ...

    def wait_until(self, awaitable: Awaitable[Any]) -> None: ...


#: The core whose user code is running now (so WebSocketPair() knows its object).
current_core: contextvars.ContextVar[ObjectCore | None] = contextvars.ContextVar(
    "current_core", default=None
)
