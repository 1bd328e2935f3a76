"""DATABASE_URL handling: one libpq-style URL, adapted for asyncpg and SQLAlchemy."""

from __future__ import annotations

import urllib.parse


def for_sqlalchemy(url: str) -> str:
    """The same URL with SQLAlchemy's asyncpg driver name."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {redact(url)}")


def for_asyncpg(url: str) -> str:
    """The URL as asyncpg's connect() accepts it (plain postgresql scheme)."""
    if url.startswith("postgresql+asyncpg://"):
        return "postgresql://" + url[len("postgresql+asyncpg://") :]
    return url


def redact(url: str) -> str:
    """The URL without its passwords, for logs and messages.

    libpq takes a password from the userinfo (``user:password@``) and from the ``password``
    query parameter; both are removed, the rest is kept as written. libpq reads the query
    from the first "?" after the userinfo, RFC 3986 from the first "?" of all: a password
    parameter is removed under either reading, so a malformed URL hides it just the same.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest = _without_password_parameter(rest, rest.find("?", _userinfo_end(rest) + 1))
    rest = _without_password_parameter(rest, rest.find("?"))
    at = _userinfo_end(rest)
    if at >= 0:
        rest = rest[:at].split(":", 1)[0] + rest[at:]
    return f"{scheme}://{rest}"


def _userinfo_end(rest: str) -> int:
    """Where libpq's userinfo ends: the "@" before the first "/"; -1 if there is none.

    The last such "@" is taken (libpq takes the first), so that a password holding an
    unencoded "@" is hidden whole.
    """
    slash = rest.find("/")
    return rest.rfind("@", 0, slash if slash >= 0 else len(rest))


def _without_password_parameter(rest: str, question: int) -> str:
    """``rest`` without ``password=...`` in the query that starts at index ``question``."""
    if question < 0:
        return rest
    kept = [
        parameter
        for parameter in rest[question + 1 :].split("&")
        if urllib.parse.unquote(parameter.partition("=")[0]) != "password"
    ]
    return rest[:question] + ("?" + "&".join(kept) if kept else "")
