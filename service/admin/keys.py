"""Typed keys of the admin app's state."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from service.admin.access import Access
from service.ports.history import HistoryService

HISTORY = web.AppKey("history", HistoryService)
ACCESS = web.AppKey("access", Access)
#: Each binding's namespace key (what a fork's id is derived with).
UNIQUE_KEYS = web.AppKey("unique_keys", Mapping[str, str])
#: Set when the node shuts down: open tails end.
STOPPING = web.AppKey("stopping", asyncio.Event)
#: Seconds between a tail's reads once it has caught up.
POLL = web.AppKey("poll", float)
#: The OpenAPI document, made once when the app is built.
DOCUMENT = web.AppKey("document", dict[str, Any])
