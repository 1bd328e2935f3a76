"""DATABASE_URL handling: one libpq-style URL, adapted for asyncpg and SQLAlchemy."""

from __future__ import annotations


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
    """The URL without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{at}{location}"
