"""The one settings model: DURABLE_* environment variables, DATABASE_URL, and CLI flags."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.api.limits import Limits

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

#: Schemes a DATABASE_URL may use (SQLAlchemy's driver-qualified one included).
_SCHEMES = ("postgresql://", "postgres://", "postgresql+asyncpg://")


def default_node_id() -> str:
    """A node id of its own for every run: the host name (to find the machine), the process
    id (to find the process) and a random suffix (so that a restarted process, which may get
    the same pid in a fresh container, is never taken for its previous run)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Settings(BaseSettings):
    """Every knob of a node.

    Each field is read from ``DURABLE_<NAME>`` and can be given as ``--<name>`` to
    ``durable``; a flag wins over the environment. The descriptions are the ``--help`` text.
    """

    model_config = SettingsConfigDict(env_prefix="DURABLE_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        # The prefixed name is the more specific one, so it wins when both are set.
        validation_alias=AliasChoices("DURABLE_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL to use (also read from DATABASE_URL); "
        "unset: an embedded server in --data-dir",
    )
    data_dir: Path = Field(
        default=Path(".durable"), description="where the embedded PostgreSQL keeps its data"
    )
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8787, ge=0, le=65535, description="port to listen on (0: any free)")
    node_id: str = Field(
        default_factory=default_node_id,
        min_length=1,
        description="this node's name in the nodes, catalog and presence tables; a node "
        "refuses to start with the id of a live one (default: host name, process id and a "
        "random suffix, new for every run)",
    )
    role: Literal["all", "gateway", "host"] = Field(
        default="all",
        description="what this node does: all (holds client sockets and runs objects), "
        "gateway (holds client sockets, runs no object: their work goes to the hosts) or host "
        "(runs objects, refuses clients with 421: a balancer sends them to the gateways)",
    )
    lease_timeout: float = Field(
        default=5.0,
        gt=0,
        description="seconds after its last heartbeat (sent every third of that) that a node "
        "counts as dead: another node then takes over its objects and closes its sockets in "
        "the log",
    )
    route_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds a request, RPC call or admin API change for an object another "
        "node runs waits for that node's reply (it travels through the database); past it, a "
        "request or a change gets 504 and a call raises OwnerTimeoutError",
    )
    node_retention: float = Field(
        default=86400.0,
        gt=0,
        description="seconds the row of a node that stopped or died stays in the nodes table "
        "(it stays longer while an object, an outbox row, an open socket or a waiting request "
        "still refers to it)",
    )
    hibernate_after: float = Field(
        default=10.0, gt=0, description="idle seconds before an object hibernates"
    )
    snapshot_every: int = Field(
        default=100, ge=1, description="write a snapshot every this many events"
    )
    poll_interval: float = Field(
        default=5.0, gt=0, description="seconds between polls of inbox and alarms"
    )
    max_message_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        le=32 << 20,
        description="largest inbound WebSocket message in bytes (at most 32 MiB)",
    )
    max_attachment_bytes: int = Field(
        default=16384, ge=1, description="largest serialized socket attachment in bytes"
    )
    max_resume_messages: int = Field(
        default=10_000,
        ge=0,
        description="most published messages a reconnecting socket is sent from the log; one "
        "that missed more gets the newest ones, after a frame saying the others were truncated",
    )
    commit_retry_seconds: float = Field(
        default=10.0,
        ge=0,
        description="seconds a commit keeps retrying while the database is unreachable",
    )
    pool_size: int = Field(
        default=10,
        ge=2,
        description="database connections of this node (3 of them kept for commits and health)",
    )
    pool_timeout: float = Field(
        default=5.0,
        gt=0,
        description="seconds a query waits for a free database connection before it fails",
    )
    heartbeat: float = Field(
        default=30.0,
        ge=0,
        description="seconds a client may stay silent before it is pinged; one that does not "
        "answer within half that time is disconnected (0: no pings, dead clients stay)",
    )
    header_timeout: float = Field(
        default=75.0,
        gt=0,
        description="seconds a connection gets to send a request's headers, from when it "
        "opened or its previous response ended (so also the keep-alive idle time); longer "
        "than a load balancer's idle timeout (commonly 60), so it never reuses a closed one",
    )
    # 4 MiB: four inbound messages of the default largest size, or 2,000 chat messages of
    # 2 KB, may wait for one client; and one stuck client costs a node at most that much
    # (256 of them, 1 GiB) where it cost without bound.
    max_buffered_bytes: int = Field(
        default=4 << 20,
        ge=1 << 16,
        description="most output that may wait for a client that is not keeping up (its "
        "connection's buffer is full), in bytes, text counted in characters; past it the "
        "socket is closed with 1008",
    )
    websocket_compression: bool = Field(
        default=False,
        description="negotiate permessage-deflate with clients that offer it (browsers do); "
        "each socket that has exchanged a message then keeps about 96 KiB of zlib state",
    )
    auto_migrate: bool = Field(
        default=False,
        description="apply migrations at start with DATABASE_URL set "
        "(the embedded server always is)",
    )
    shutdown_timeout: float = Field(
        default=10.0, ge=0, description="seconds objects get to finish their work at shutdown"
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto",
        description="event loop: uvloop, asyncio's own, or auto (uvloop when installed)",
    )
    gc_threshold: int = Field(
        default=50_000,
        ge=0,
        description="allocations between young garbage collections (0: Python's default, 700)",
    )
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    object_log_level: LogLevel = Field(
        default="INFO",
        description="lowest level of the records an object's code logs in a turn that are "
        "kept with it in object_logs (DEBUG, INFO, WARNING or ERROR)",
    )
    log_bytes_per_turn: int = Field(
        default=64 * 1024,
        ge=0,
        description="most bytes of log messages one turn of an object keeps in object_logs; "
        "past it the turn's later records are dropped, and one line says how many",
    )
    admin: bool = Field(
        default=False,
        description="serve the admin API under /admin/api and its dashboard at /admin/: the "
        "history of every object, read only unless --admin-write; without --admin-token, to "
        "loopback clients only",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="bearer token the admin API requires (Authorization: Bearer TOKEN), at "
        "least 16 characters; unset: it answers only clients on this machine's loopback",
    )
    admin_write: bool = Field(
        default=False,
        description="let the admin API change objects (fork, restore, close a socket, send a "
        "socket a frame); each change is recorded in the object's log with who made it",
    )
    admin_operator: str | None = Field(
        default=None,
        min_length=1,
        description="who holds the admin token, as the log records the changes the admin API "
        "makes (default: admin-api from the client's address)",
    )

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(_SCHEMES):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("log_level", "object_log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_attachment_bytes=self.max_attachment_bytes,
            max_resume_messages=self.max_resume_messages,
        )
