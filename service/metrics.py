"""Prometheus metrics of one node, in a registry of its own (several apps may share a process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Every metric the service exposes at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._pools: Callable[[], dict[str, tuple[int, int]]] | None = None
        self.events_appended = Counter(
            "durable_events_appended",
            "Events committed to the log by this node.",
            registry=self.registry,
        )
        self.flushes = Counter(
            "durable_flushes", "Group-commit transactions.", registry=self.registry
        )
        self.commit_seconds = Histogram(
            "durable_commit_seconds",
            "Duration of one group-commit transaction.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.wake_seconds = Histogram(
            "durable_wake_seconds",
            "Time to claim, replay and construct an object.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.hibernations = Counter(
            "durable_hibernations", "Objects evicted from memory.", registry=self.registry
        )
        self.live_objects = Gauge(
            "durable_live_objects", "Objects in memory on this node.", registry=self.registry
        )
        self.hibernated_objects = Gauge(
            "durable_hibernated_objects",
            "Objects with open sockets on this node but not in memory.",
            registry=self.registry,
        )
        self.socket_overflows = Counter(
            "durable_socket_overflows",
            "Sockets closed (1008) because their client did not read what was sent to it.",
            registry=self.registry,
        )
        self.open_sockets = Gauge(
            "durable_open_sockets",
            "WebSocket connections held by this node.",
            registry=self.registry,
        )

        self.pool_exhausted = Counter(
            "durable_pool_exhausted",
            "Waits for a database connection that timed out (every connection stayed busy).",
            ["pool"],
            registry=self.registry,
        )
        self.pool_connections = Gauge(
            "durable_pool_connections",
            "Database connections of this node's pools, by pool and state.",
            ["pool", "state"],
            registry=self.registry,
        )

    def on_pool_exhausted(self, pool: str) -> None:
        self.pool_exhausted.labels(pool).inc()

    def on_flush(self, events: int, seconds: float) -> None:
        if events:
            self.events_appended.inc(events)
        self.flushes.inc()
        self.commit_seconds.observe(seconds)

    def watch(
        self,
        live: Callable[[], int],
        hibernated: Callable[[], int],
        sockets: Callable[[], int],
        pools: Callable[[], dict[str, tuple[int, int]]] | None = None,
    ) -> None:
        """Compute the gauges from the runtime and gateway at scrape time."""
        self.live_objects.set_function(live)
        self.hibernated_objects.set_function(hibernated)
        self.open_sockets.set_function(sockets)
        self._pools = pools

    def render(self) -> bytes:
        if self._pools is not None:
            for pool, (in_use, size) in self._pools().items():
                self.pool_connections.labels(pool, "in_use").set(in_use)
                self.pool_connections.labels(pool, "size").set(size)
        return bytes(generate_latest(self.registry))
