"""Which host an object nobody owns goes to, when the node its work reached runs no objects
(a gateway, or a node handing its objects over on its way out).

Rendezvous (highest-random-weight) hashing of the object id over the live nodes that run
objects: every node that asks picks the same host for an object, without talking to the
others, and a host that leaves moves only the objects it would have had; the others keep
theirs. The list of hosts is read from ``live_nodes``, at least once a heartbeat interval,
and at once when a host chosen from it turns out to be gone or draining.

A host that is draining (handing its objects over, on its way out) is chosen by nobody
while another host is live, and never by a node that is leaving itself: such a node marks
itself draining before it reads the hosts it passes its objects to, so of two hosts leaving
together, at least one sees the other draining; and a wake is passed to a host only if it
is not draining at that moment (``wake_on``). So an object is never passed back and forth:
it goes to a host that takes it, or waits in the inbox for one to start.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from service.ports.errors import StoreError
from service.ports.event_log import EventLog

log = logging.getLogger(__name__)

_PLACEMENT = {"action": "placement"}


def weight(host: str, object_id: str) -> int:
    """The host's weight for the object: a hash of both, the same on every node."""
    digest = hashlib.blake2b(f"{host}\x00{object_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(object_id: str, hosts: Iterable[str]) -> str | None:
    """The host of highest weight for the object (None if there is none)."""
    return max(hosts, key=lambda host: (weight(host, object_id), host), default=None)


class Placement:
    """The live hosts as this node last read them, and the choice among them."""

    def __init__(self, event_log: EventLog) -> None:
        self._event_log = event_log
        self._node_id = event_log.node_id
        #: Live nodes that run objects, this one included if it does, as last read.
        self.hosts: tuple[str, ...] = ()
        #: Those of them that were draining (on their way out) when read.
        self.draining: frozenset[str] = frozenset()

    async def refresh(self) -> tuple[str, ...]:
        """Read the live hosts again (StoreError if the database does not answer)."""
        live = await self._event_log.live_hosts()
        self.hosts = tuple(host.node_id for host in live)
        self.draining = frozenset(host.node_id for host in live if host.draining)
        return self.hosts

    def ready(self) -> tuple[str, ...]:
        """The live hosts other than this node that take new objects (not draining)."""
        return tuple(h for h in self.hosts if h != self._node_id and h not in self.draining)

    def choose(self, object_id: str, *, leaving: bool = False) -> str | None:
        """The host for an object nobody owns: never this node (a gateway is never among
        the hosts; a node handing its objects over must not get them back), and one that is
        not draining if there is one. With only draining hosts left, a gateway chooses among
        them (one of role ``all`` with nobody to hand its objects to keeps running them), a
        node that is ``leaving`` chooses none (None: the work waits in the inbox)."""
        ready = self.ready()
        if ready or leaving:
            return rendezvous(object_id, ready)
        return rendezvous(object_id, (h for h in self.hosts if h != self._node_id))

    async def pass_on(self, object_ids: Iterable[str], *, leaving: bool = False) -> None:
        """Wake, for each object, its live owner or else the host chosen for it: this node
        will not run it. A chosen host found gone or draining (it stopped, died or began to
        leave since the list was read) makes the list be read again and the choice made
        anew."""
        left = list(object_ids)
        for _ in range(3):
            if not left:
                return
            by_host: dict[str, list[str]] = {}
            for object_id in left:
                host = self.choose(object_id, leaving=leaving)
                if host is not None:
                    by_host.setdefault(host, []).append(object_id)
            if len(left) > sum(map(len, by_host.values())):
                # The inbox keeps their work; the next host to start polls it.
                log.log(
                    logging.INFO if leaving else logging.WARNING,
                    "no other live node runs objects: %d objects wait for one to start",
                    len(left) - sum(map(len, by_host.values())),
                    extra=_PLACEMENT,
                )
            left = []
            try:
                for host, ids in by_host.items():
                    draining = host in self.draining
                    if not await self._event_log.wake_on(host, ids, draining=draining):
                        left.extend(ids)
                    elif leaving:  # rare, and what an operator wants to follow
                        log.info(
                            "passed %d objects on to %s (or their live owners)",
                            len(ids),
                            host,
                            extra=_PLACEMENT,
                        )
                if left:
                    await self.refresh()
            except StoreError as error:
                log.warning(
                    "could not wake a host (the hosts' polls will find the work): %s",
                    error,
                    extra=_PLACEMENT,
                )
                return
