"""Who may use the admin API: the holder of its bearer token, or, while no token is set, a
client on this machine's loopback that no proxy forwarded.

The client's address is the TCP peer's, never a header's: ``X-Forwarded-For`` and its kin
are whatever the client chose to write. A reverse proxy on this machine connects from
loopback, so without a token a request carrying such a header is refused too: its sender is
the proxy's client, not someone on this machine.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Headers by which a proxy says whom it forwards for.
FORWARDED_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")

#: The body of every refusal for a missing or wrong token: it says nothing else.
UNAUTHORIZED = "unauthorized"

NO_TOKEN_REMOTE = (
    "the admin API has no token set, so it answers only clients on this machine's loopback: "
    "set DURABLE_ADMIN_TOKEN (--admin-token) to reach it from elsewhere"
)

NO_TOKEN_FORWARDED = (
    "the admin API has no token set, and a proxy forwarded this request (it carries a "
    "Forwarded, X-Forwarded-For or X-Real-IP header): set DURABLE_ADMIN_TOKEN (--admin-token) "
    "to reach it through a proxy"
)


@dataclass(frozen=True, slots=True)
class Access:
    """The admin API's access settings."""

    #: The bearer token; None: loopback clients only. Kept out of the repr (and so the logs).
    token: str | None = field(default=None, repr=False)
    #: Whether it may change objects (fork, restore, a socket's close or frame).
    write: bool = False
    #: Who holds the token, as the log records the changes made with it.
    operator: str | None = None

    def operator_at(self, address: str | None) -> str:
        """Who made a change, as the log records it: the token's holder, and from where."""
        where = f"admin-api from {address or 'an unknown address'}"
        return where if self.operator is None else f"{self.operator} ({where})"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: its status and the message of its body."""

    status: int
    message: str


def check(access: Access, headers: Mapping[str, str], peer: str | None) -> Refusal | None:
    """None when the request may go on; else why not (401: no or a wrong token, nothing
    else said; 403: no token set and the client is not on loopback, or came by a proxy)."""
    if access.token is not None:
        scheme, _, given = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not _same(given.strip(), access.token):
            return Refusal(401, UNAUTHORIZED)
        return None
    if not is_loopback(peer):
        return Refusal(403, NO_TOKEN_REMOTE)
    if any(name in headers for name in FORWARDED_HEADERS):
        return Refusal(403, NO_TOKEN_FORWARDED)
    return None


def check_page(access: Access, headers: Mapping[str, str], peer: str | None) -> Refusal | None:
    """``check`` for the dashboard's own files, which hold no data and no secret: with a
    token set, anyone gets them (every read the page then makes needs the token); with none,
    whom the API answers does (loopback, not forwarded)."""
    if access.token is not None:
        return None
    return check(access, headers, peer)


def is_loopback(address: str | None) -> bool:
    """Whether a peer address is this machine's loopback (127.0.0.0/8, ::1, or an IPv4
    loopback address mapped into IPv6)."""
    if not address:
        return False
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped.is_loopback
    return parsed.is_loopback


def _same(given: str, token: str) -> bool:
    """Constant-time comparison, of digests so that not even the token's length shows."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest()
    )
