"""The one settings model: DURABLE_* environment variables, DATABASE_URL, and CLI flags."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.api.limits import Limits


class Settings(BaseSettings):
    """Every knob of a node. Flags of `durable` override the environment."""

    model_config = SettingsConfigDict(env_prefix="DURABLE_", extra="ignore")

    #: PostgreSQL to use; unset means an embedded server in ``data_dir``.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "DURABLE_DATABASE_URL")
    )
    host: str = "127.0.0.1"
    port: int = 8787
    #: Where the embedded PostgreSQL keeps its data.
    data_dir: Path = Path(".durable")
    #: Name of this node in the catalog and the presence table.
    node_id: str = Field(default_factory=socket.gethostname)
    #: Seconds an object may sit idle before it hibernates.
    hibernate_after: float = Field(default=10.0, gt=0)
    #: A snapshot is written every this many events (and at hibernation).
    snapshot_every: int = Field(default=100, ge=1)
    #: Seconds between polls of the inbox and of due alarms (the LISTEN fallback).
    poll_interval: float = Field(default=5.0, gt=0)
    #: Largest inbound WebSocket message, in bytes (1 MiB by default, at most 32 MiB).
    max_message_bytes: int = Field(default=1 << 20, ge=1024, le=32 << 20)
    #: Largest serialized attachment (16,384 by default; 2,048 restores the old limit).
    max_attachment_bytes: int = Field(default=16384, ge=1)
    #: Seconds a flush keeps retrying while the database is unreachable.
    commit_retry_seconds: float = Field(default=10.0, ge=0)
    pool_size: int = Field(default=10, ge=2)
    #: Seconds between protocol pings to clients (unset: none, clients keep themselves alive).
    heartbeat: float | None = None
    #: Apply migrations at start even with DATABASE_URL set (the embedded server always is).
    auto_migrate: bool = False
    shutdown_timeout: float = 10.0
    log_level: str = "INFO"

    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_attachment_bytes=self.max_attachment_bytes,
        )
