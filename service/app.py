"""Composition root of a node: the one module that wires store, runtime and gateway together
(the history's front ends have theirs: ``service.history_root``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from service.admin.access import Access
from service.admin.routes import MOUNT as ADMIN_MOUNT
from service.admin.routes import PREFIX as ADMIN_PREFIX
from service.admin.server import create_admin
from service.api.application import Application
from service.gateway import keys
from service.gateway.registry import SocketRegistry
from service.gateway.server import create_gateway
from service.history.service import LogHistory
from service.metrics import Metrics
from service.runtime.node import Node
from service.runtime.node_settings import NodeSettings
from service.settings import Settings
from service.store.event_store import EventStore
from service.store.history_store import HistoryStore

#: Connections of the admin API's own pool (its reads never take a node's).
ADMIN_POOL_SIZE = 4


def server_options(settings: Settings) -> dict[str, Any]:
    """Options of aiohttp's HTTP server (its ``AppRunner``) that come from the settings."""
    # aiohttp arms this timer when a connection opens and again after each response, and
    # closes the connection if no complete request head has arrived by then: it bounds a
    # client that sends nothing, or half a request line, as well as idle keep-alives.
    return {"keepalive_timeout": settings.header_timeout}


def create_app(
    settings: Settings,
    application: Application,
    *,
    on_fatal: Callable[[str], None] | None = None,
) -> web.Application:
    """The node's web app: every component is built here and handed in; database, listener
    and node live in its cleanup context. ``on_fatal`` is told when the node must stop (it
    was declared dead: another node took its objects and closed its sockets)."""
    if settings.database_url is None:
        raise ValueError("create_app needs settings.database_url (the CLI starts one if unset)")
    database_url = settings.database_url
    metrics = Metrics()
    store = EventStore(
        database_url,
        settings.node_id,
        pool_size=settings.pool_size,
        retry_seconds=settings.commit_retry_seconds,
        acquire_timeout=settings.pool_timeout,
        on_flush=metrics.on_flush,
        on_pool_exhausted=metrics.on_pool_exhausted,
    )
    registry = SocketRegistry(max_buffered_bytes=settings.max_buffered_bytes, metrics=metrics)
    # The registry holds this node's sockets: it takes their output and answers their
    # auto-responses.
    node = Node(
        application,
        store,
        output=registry,
        auto_responses=registry,
        settings=NodeSettings(
            hibernate_after=settings.hibernate_after,
            snapshot_every=settings.snapshot_every,
            poll_interval=settings.poll_interval,
            shutdown_timeout=settings.shutdown_timeout,
            lease_timeout=settings.lease_timeout,
            route_timeout=settings.route_timeout,
            node_retention=settings.node_retention,
            log_bytes_per_turn=settings.log_bytes_per_turn,
            object_log_level=logging.getLevelNamesMapping()[settings.object_log_level],
        ),
        limits=settings.limits(),
        metrics=metrics,
        # A port of 0 is chosen when the server listens: recorded then (``serving_at``).
        address=f"{settings.host}:{settings.port}" if settings.port else None,
        role=settings.role,
        on_fatal=on_fatal,
    )
    history_store = None
    mounts = {}
    if settings.admin:
        history_store = HistoryStore(
            database_url, pool_size=ADMIN_POOL_SIZE, acquire_timeout=settings.pool_timeout
        )
        mounts[ADMIN_MOUNT] = create_admin(
            LogHistory(history_store),
            admin_access(settings),
            unique_keys=application.unique_keys,
            node=node,
            limits=settings.limits(),
        )
    webapp = create_gateway(
        application,
        node=node,
        registry=registry,
        limits=settings.limits(),
        metrics=metrics,
        ping=store.ping,
        heartbeat=settings.heartbeat or None,
        compression=settings.websocket_compression,
        mounts=mounts,
        role=settings.role,
    )
    metrics.watch(
        live=node.live_count,
        hibernated=lambda: len(registry.object_ids() - set(node.activations)),
        sockets=registry.socket_count,
        pools=store.pool_usage,
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        if history_store is not None:
            await history_store.open()
        try:
            await node.start()
            yield
        finally:
            await node.stop()
            if history_store is not None:
                await history_store.close()
            await store.close()

    webapp.cleanup_ctx.append(resources)
    return webapp


async def serving_at(webapp: web.Application, address: str) -> None:
    """Tell the node of ``webapp`` the address its server listens on, once it does (with
    ``--port 0`` the port is known only then), for ``nodes.address``."""
    await webapp[keys.NODE].serving_at(address)


def admin_access(settings: Settings) -> Access:
    """The admin API's access rules, from the settings."""
    token = settings.admin_token
    return Access(
        token=None if token is None else token.get_secret_value(),
        write=settings.admin_write,
        operator=settings.admin_operator,
    )


def admin_banner(settings: Settings, base_url: str) -> str:
    """What the start banner says of the admin API: where it is and who may use it."""
    if not settings.admin:
        return "Admin API: off (--admin serves it)"
    mode = "read-write" if settings.admin_write else "read-only"
    who = (
        "bearer token required"
        if settings.admin_token is not None
        else "no token set: loopback clients only"
    )
    return (
        f"Admin API at {base_url}{ADMIN_PREFIX}/ ({mode}; {who})\n"
        f"Admin dashboard at {base_url}{ADMIN_MOUNT}/"
    )
