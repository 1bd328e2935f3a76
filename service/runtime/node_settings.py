"""The node's timings (hibernation, snapshots, polling, retries, leases and shutdown) and what
its objects' logs keep."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.runtime import object_logs


@dataclass(frozen=True)
class NodeSettings:
    """Timing of hibernation, snapshots, the polling fallbacks and the lease."""

    hibernate_after: float = 10.0
    snapshot_every: int = 100
    poll_interval: float = 5.0
    listener_probe_interval: float = 5.0
    #: Failed commits a delivery may cover before it is dropped (and logged).
    max_attempts: int = 3
    shutdown_timeout: float = 10.0
    #: Seconds after its last heartbeat that the node counts as dead, and may lose its
    #: objects to another node; it heartbeats every third of that.
    lease_timeout: float = 5.0
    #: Seconds a request or RPC call routed to the node that owns its object waits for
    #: the reply.
    route_timeout: float = 30.0
    #: Seconds the row of a node that stopped or died is kept in ``nodes`` (unless
    #: something still refers to it).
    node_retention: float = 86400.0
    #: Most bytes of log messages a turn keeps (``object_logs``), and the lowest level kept.
    log_bytes_per_turn: int = object_logs.DEFAULT_LIMIT
    object_log_level: int = logging.INFO
