"""Typed keys of the admin app's state."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from service.admin.access import Access
from service.api.limits import Limits
from service.ports.history import HistoryService
from service.ports.node import NodeService

HISTORY = web.AppKey("history", HistoryService)
ACCESS = web.AppKey("access", Access)
#: The node beside which the API runs: an operator's changes to live objects go to it (absent:
#: the API changes no live object).
NODE: web.AppKey[NodeService] = web.AppKey("node")
#: The limits of the objects it serves (a frame's size, a close reason's).
LIMITS = web.AppKey("limits", Limits)
#: Each binding's namespace key (what a fork's id is derived with).
UNIQUE_KEYS = web.AppKey("unique_keys", Mapping[str, str])
#: Set when the node shuts down: open tails end.
STOPPING = web.AppKey("stopping", asyncio.Event)
#: Seconds between a tail's reads once it has caught up.
POLL = web.AppKey("poll", float)
#: The OpenAPI document, made once when the app is built.
DOCUMENT = web.AppKey("document", dict[str, Any])
