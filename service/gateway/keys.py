"""Typed keys of the aiohttp application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from service.api.application import Application
from service.api.limits import Limits
from service.gateway.registry import SocketRegistry
from service.metrics import Metrics
from service.ports.node import NodeService

APPLICATION = web.AppKey("application", Application)
REGISTRY = web.AppKey("registry", SocketRegistry)
#: The running node: socket events go to it, requests reach objects through its env.
NODE: web.AppKey[NodeService] = web.AppKey("node")
METRICS = web.AppKey("metrics", Metrics)
LIMITS = web.AppKey("limits", Limits)
#: Raises unless the database answers (for /healthz).
PING: web.AppKey[Callable[[], Awaitable[None]]] = web.AppKey("ping")
#: Seconds a client may stay silent before it is pinged (unset: no pings).
HEARTBEAT = web.AppKey("heartbeat", float)
#: The node's role: ``host`` refuses clients (421), ``all`` and ``gateway`` serve them.
ROLE = web.AppKey("role", str)
#: Whether to negotiate permessage-deflate with clients that offer it.
COMPRESSION = web.AppKey("compression", bool)
