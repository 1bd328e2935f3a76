"""A scratch database on the benchmark's PostgreSQL server: created, migrated, dropped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from service.store import database_url, migrate

#: The server the benchmarks use when DATABASE_URL is unset.
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

#: Names we generate ourselves; checked before they are spliced into DDL.
_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


def server_url() -> str:
    """DATABASE_URL, or the local default server."""
    return os.environ.get("DATABASE_URL") or DEFAULT_URL


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database ``name``."""
    parts = urlsplit(database_url.for_asyncpg(url))
    return urlunsplit(parts._replace(path="/" + name))


def _quoted(name: str) -> str:
    # CREATE/DROP DATABASE take no parameters, so the identifier is spliced in; the name
    # is generated here and checked against a strict pattern first.
    if not _NAME.match(name):
        raise ValueError(f"unexpected database name {name!r}")
    return '"' + name + '"'


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(database_url.for_asyncpg(url), timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def server_version(url: str) -> str:
    """The PostgreSQL version of the server at ``url``."""
    connection = await asyncpg.connect(database_url.for_asyncpg(url), timeout=10)
    try:
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(url: str, prefix: str = "durable_bench") -> Iterator[str]:
    """Create and migrate a fresh database on ``url``'s server; drop it on the way out.

    Migration runs its own event loop, so enter this outside any running loop.
    """
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_execute(url, "CREATE DATABASE " + _quoted(name)))
    try:
        scratch = with_database(url, name)
        migrate.upgrade(scratch)
        yield scratch
    finally:
        asyncio.run(_execute(url, "DROP DATABASE IF EXISTS " + _quoted(name) + " WITH (FORCE)"))
