"""DATABASE_URL redaction: no password of a libpq URL reaches a log line or a message."""

from __future__ import annotations

import pytest

from service.store.database_url import redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:secret@db:5432/app", "postgresql://app@db:5432/app"),
        (
            "postgresql://app:secret@db/app?sslmode=require",
            "postgresql://app@db/app?sslmode=require",
        ),
        ("postgresql://app@db/app?password=secret", "postgresql://app@db/app"),
        (
            "postgresql://db/app?password=secret&sslmode=require",
            "postgresql://db/app?sslmode=require",
        ),
        (
            "postgresql://db/app?sslmode=require&password=secret",
            "postgresql://db/app?sslmode=require",
        ),
        (
            "postgresql://app:secret@/app?host=/run/postgresql&password=secret&port=5433",
            "postgresql://app@/app?host=/run/postgresql&port=5433",
        ),
        ("postgresql://db?password=secret", "postgresql://db"),
        ("postgres://db/app?pass%77ord=secret", "postgres://db/app"),
        ("postgresql+asyncpg://app:secret@db/app", "postgresql+asyncpg://app@db/app"),
        ("postgresql://app:secret@h1:5432,h2:5433/app", "postgresql://app@h1:5432,h2:5433/app"),
    ],
    ids=[
        "userinfo",
        "userinfo-with-query",
        "query",
        "query-first",
        "query-last",
        "socket-host-and-both",
        "query-without-path",
        "encoded-key",
        "sqlalchemy-scheme",
        "several-hosts",
    ],
)
def test_passwords_are_removed(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw1@pw2@db/app",  # "@" left unencoded in the password
        "postgresql://app:pw1?pw2@db/app",  # libpq reads a "?" before the "@" as the password's
        "postgresql://app:pw0@db?password=pw1@pw2",
        "postgresql://db:5432?password=pw1@pw2&host=/tmp",
        "postgresql://db/app?password=pw1/pw2@pw3&sslmode=require",
        "postgresql://app:pw1?pw2@db/app?password=pw3?pw4",
    ],
)
def test_malformed_passwords_are_hidden_whole(url: str) -> None:
    assert "pw" not in redact(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@db:5432/app?sslmode=require&application_name=chat",
        "postgresql://postgres@/postgres?host=/tmp/pg",
        "not a url",
    ],
)
def test_a_url_without_a_password_is_kept_as_written(url: str) -> None:
    assert redact(url) == url
