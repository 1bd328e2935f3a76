"""The running node as its front ends see it (the gateway, the admin API).

Live objects, their mailboxes, wake, hibernation and ownership are the node's business:
a front end hands it socket events, requests and an operator's actions, and asks it to
wind down, nothing more.
"""

from __future__ import annotations

from typing import Protocol

from service.api.namespace import Env
from service.ports.operator_actions import Operated, OperatorAction
from service.ports.socket_events import SocketEvents


class NodeService(SocketEvents, Protocol):
    """The node's interface to its front ends (implemented by ``service.runtime.node``)."""

    @property
    def env(self) -> Env:
        """The application's ``env``: a namespace per binding, whose stubs reach objects."""

    async def operate(
        self, object_id: str, binding: str, name: str | None, action: OperatorAction
    ) -> Operated:
        """Run an operator's action as a turn of the object (woken if it sleeps, on its
        owner wherever that is), and return once the event recording it is committed.

        Raises a kind of ``OperatorActionError`` when the owner refuses it, and as a request
        does when the object cannot be reached (``OwnerTimeoutError`` past the route
        timeout, ``StorageUnavailableError``, ``NoHostError``, ``ObjectResetError``)."""

    @property
    def shutdown_timeout(self) -> float:
        """Seconds the node gives its objects to finish their work when it stops."""

    async def serving_at(self, address: str) -> None:
        """The front end's server listens at ``address`` (host:port) now: the node records
        it (a port of 0 is chosen only once the server listens)."""

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until every live object has run and released its work."""

    async def hand_over(self) -> None:
        """On the way out, before sockets close: finish the turns in flight and give every
        object to another node (its work from now on goes there through the inbox)."""

    def stop_waking(self) -> None:
        """Shutting down: work for hibernated objects goes to the inbox, for the next node."""
