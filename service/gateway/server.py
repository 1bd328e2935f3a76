"""The aiohttp application factory of the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import web

from service.api.application import Application
from service.api.limits import Limits
from service.gateway import keys, routes, session
from service.gateway.registry import SocketRegistry
from service.metrics import Metrics
from service.ports.node import NodeService

log = logging.getLogger(__name__)


def create_gateway(
    application: Application,
    *,
    node: NodeService,
    registry: SocketRegistry,
    limits: Limits,
    metrics: Metrics,
    ping: Callable[[], Awaitable[None]],
    heartbeat: float | None = None,
    compression: bool = False,
    mounts: Mapping[str, web.Application] | None = None,
    role: str = "all",
) -> web.Application:
    """The web app, a front end over ``node``; ``registry`` holds its sockets (and is where
    the node's socket output goes). ``mounts`` are other front ends' apps, each served
    under its path prefix (the admin API and dashboard), ahead of the application's own routes."""
    app = web.Application(client_max_size=max(limits.max_message_bytes, 1 << 20))
    app[keys.APPLICATION] = application
    app[keys.NODE] = node
    app[keys.REGISTRY] = registry
    app[keys.METRICS] = metrics
    app[keys.LIMITS] = limits
    app[keys.PING] = ping
    app[keys.COMPRESSION] = compression
    app[keys.ROLE] = role
    if heartbeat:
        app[keys.HEARTBEAT] = heartbeat
        app.cleanup_ctx.append(_heartbeats)
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/metrics", routes.metrics)
    for prefix, mounted in (mounts or {}).items():
        app.add_subapp(prefix, mounted)
    app.router.add_route("*", "/{tail:.*}", routes.dispatch)
    app.on_shutdown.append(_close_sockets)
    return app


async def _heartbeats(app: web.Application) -> AsyncIterator[None]:
    """Protocol pings to silent clients, for as long as the app runs."""
    task = asyncio.create_task(app[keys.REGISTRY].heartbeats(app[keys.HEARTBEAT]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    """Going away: hand the objects over (their turns in flight finish and send their
    replies; they move to another node, and their frames keep reaching this node's sockets),
    then tell each object its socket closed (1001) and close the connection."""
    registry = app[keys.REGISTRY]
    node = app[keys.NODE]
    timeout = node.shutdown_timeout
    await node.hand_over()
    await registry.drain(timeout)
    # A close is no reason to wake a hibernated object now: it waits in the inbox.
    node.stop_waking()
    for entry in list(registry.entries.values()):
        session.finish(entry, node, 1001, "Going Away", True)
    for entry in list(registry.entries.values()):
        if entry.ws is not None and not entry.ws.closed:
            try:
                await entry.ws.close(code=1001, message=b"Going Away")
            except Exception as error:
                log.debug("close at shutdown failed: %r", error)
