"""The nodes sharing one database, as a node sees them: its own row, and the dead ones.

Ownership of an object is a lease: a node may claim it only while nobody live owns it, and
a node is live while its heartbeat is younger than its lease timeout. The node's row is its
side of every lease it holds; the sweep is how a survivor finishes a dead node's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SweptNode:
    """A node found dead (or stopped), swept by this one."""

    node_id: str
    #: Its sockets still open in the log, each now closed through its object's inbox.
    sockets: int
    #: Objects woken for that: those of the closed sockets, and the ones the dead node owned
    #: that have inbox rows waiting.
    objects: int


@dataclass(frozen=True, slots=True)
class LiveHost:
    """A live node that runs objects, as the placement of objects nobody owns sees it."""

    node_id: str
    #: It is handing its objects over (on its way out): it takes no new ones.
    draining: bool = False


class NodeDirectory(Protocol):
    """The ``nodes`` table, for the node the store runs (``service.store.nodes``)."""

    async def join(self, address: str | None, role: str, lease_timeout: float) -> None:
        """Write this node's row; NodeIdInUseError if a live node has this id."""

    async def heartbeat(self) -> bool:
        """Renew this node's lease; False if the row is no longer this run's (a survivor
        swept it, or a newer run took the id): the node must then stop for good."""

    async def serving_at(self, address: str) -> None:
        """Record the address this node serves on, once its server listens."""

    async def drain(self) -> None:
        """Mark this node draining: it is handing its objects over, and takes no new ones
        (its stop ends the mark; a new run of its id clears it)."""

    async def leave(self) -> None:
        """Mark this node stopped: whatever it still owns may be claimed at once."""

    async def prune(self, retention: float) -> list[str]:
        """Delete the rows of nodes gone (stopped, or dead) for more than ``retention``
        seconds that nothing refers to any more (no object they own, no outbox row for
        them, no socket of theirs open in the log, no request waiting to reply to them);
        the ids deleted."""

    async def live_hosts(self) -> list[LiveHost]:
        """The live nodes that run objects (role ``host`` or ``all``), this one included,
        each marked if it is draining."""

    async def sweep_dead_node(self, close: dict[str, Any]) -> SweptNode | None:
        """Take one node that is no longer live and not yet swept, mark it swept, and queue
        ``close`` (the inbox data of a close) for each of its open sockets, waking their
        objects; None when there is no such node. Two survivors never sweep one node."""
