"""Which host an object nobody owns goes to, when the node its work reached runs no objects
(a gateway, or a node handing its objects over on its way out).

Rendezvous (highest-random-weight) hashing of the object id over the live nodes that run
objects: every node that asks picks the same host for an object, without talking to the
others, and a host that leaves moves only the objects it would have had; the others keep
theirs. The list of hosts is read from ``live_nodes``, at least once a heartbeat interval,
and at once when a host chosen from it turns out to be gone.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable

from service.ports.errors import StoreError
from service.ports.event_log import EventLog

log = logging.getLogger(__name__)

#: Seconds during which a node on its way out passes on the wake of an object once only:
#: two nodes leaving together, each taking the other for a host, must not pass it back and
#: forth as fast as NOTIFY goes. (A gateway passes on every wake its own writes bring it.)
PASS_ON_QUIET = 0.2


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
        #: When each object's wake was last passed on (see PASS_ON_QUIET).
        self._passed: dict[str, float] = {}

    async def refresh(self) -> tuple[str, ...]:
        """Read the live hosts again (StoreError if the database does not answer)."""
        self.hosts = tuple(await self._event_log.live_hosts())
        return self.hosts

    def choose(self, object_id: str, *, exclude_self: bool = True) -> str | None:
        """The host for an object nobody owns: not this node unless asked (a gateway is
        never among the hosts; a node handing its objects over must not get them back)."""
        hosts = self.hosts
        if exclude_self:
            hosts = tuple(h for h in hosts if h != self._node_id)
        return rendezvous(object_id, hosts)

    async def pass_on(self, object_ids: Iterable[str], *, leaving: bool = False) -> None:
        """Wake, for each object, its live owner or else the host chosen for it: this node
        will not run it. A chosen host found gone (it stopped or died since the list was
        read) makes the list be read again and the choice made anew."""
        left = list(object_ids)
        if leaving:
            now = time.monotonic()
            self._passed = {o: t for o, t in self._passed.items() if now - t < PASS_ON_QUIET}
            left = [o for o in left if o not in self._passed]
            self._passed.update(dict.fromkeys(left, now))
        for _ in range(3):
            if not left:
                return
            by_host: dict[str, list[str]] = {}
            for object_id in left:
                host = self.choose(object_id)
                if host is not None:
                    by_host.setdefault(host, []).append(object_id)
            if len(left) > sum(map(len, by_host.values())):
                # The inbox keeps their work; the next host to start polls it.
                log.log(
                    logging.INFO if leaving else logging.WARNING,
                    "no other live node runs objects: %d objects wait for one to start",
                    len(left) - sum(map(len, by_host.values())),
                    extra={"action": "placement"},
                )
            left = []
            try:
                for host, ids in by_host.items():
                    if not await self._event_log.wake_on(host, ids):
                        left.extend(ids)
                if left:
                    await self.refresh()
            except StoreError as error:
                log.warning(
                    "could not wake a host (the hosts' polls will find the work): %s",
                    error,
                    extra={"action": "placement"},
                )
                return
