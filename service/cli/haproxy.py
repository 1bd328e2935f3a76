"""HAProxy in front of ``durable cluster``'s nodes: finding the binary, writing its config.

The balancer hashes each request on the object its path names (``/<binding>/<name>``, or
``/<binding>/by-id/<id>``), with consistent hashing: all of an object's requests and sockets
reach one node, which is where the object then wakes (placement), so none of its messages
crosses the database to reach another node; and a node that goes down or comes back moves
only its own share of objects. ``docker/haproxy.cfg`` hashes the same way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

#: Where system packages put the binary that a user's PATH may lack (Debian: /usr/sbin).
_SYSTEM_DIRECTORIES = ("/usr/sbin", "/usr/local/sbin")

#: How to get HAProxy, for the error that says it is missing.
INSTALL = (
    "install it from the system packages (Debian/Ubuntu: sudo apt-get install haproxy; "
    "macOS: brew install haproxy) or pass --haproxy PATH"
)

#: The hash on the object: the first two segments of the path, three after by-id. HAProxy's
#: ``word`` skips empty words, so the leading slash and a doubled one do not count.
OBJECT_HASH = """\
    http-request set-var(txn.object) path,word(1,/,2)
    http-request set-var(txn.object) path,word(1,/,3) if { path,word(2,/) -m str by-id }
    balance hash var(txn.object)
    hash-type consistent"""

_CONFIG = """\
# HAProxy in front of the nodes of `durable cluster`, written for one run of it.
global
    # A soft stop (SIGUSR1: the cluster's first step when it stops) lets open connections
    # finish, as the nodes close them; never for longer than this.
    hard-stop-after 30s

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    # An upgraded WebSocket is a tunnel. Nodes ping clients silent for --heartbeat seconds
    # and drop those that do not answer, so the balancer may wait long on a quiet one.
    timeout tunnel 1h
    timeout client-fin 10s
    # A node that refuses the connection (it is stopping) has the request sent to another.
    retries 2
    option redispatch

frontend durable
    bind {bind}
    default_backend nodes

backend nodes
    # All of an object's requests and sockets go to one node, where it then wakes.
{object_hash}
    # A node counts as down after two failed checks a second apart, and up after two passed.
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2
{servers}
"""


def find(name: str) -> str | None:
    """The HAProxy binary ``name`` names: a path, or a name looked up on PATH and then in
    the system directories packages install it to; None when there is none."""
    if os.sep in name:
        path = Path(name)
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which(name)
    if found is None:
        found = shutil.which(name, path=os.pathsep.join(_SYSTEM_DIRECTORIES))
    return found


def config(host: str, port: int, servers: Sequence[tuple[str, str, int]]) -> str:
    """HAProxy's configuration: listen on ``host:port``, balance over ``servers``, each
    (name, host, port)."""
    return _CONFIG.format(
        bind=_address(host, port),
        object_hash=OBJECT_HASH,
        servers="\n".join(
            f"    server {name} {_address(address, at)}" for name, address, at in servers
        ),
    )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
