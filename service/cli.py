"""The ``durable`` command: ``serve`` an application, ``migrate`` the database."""

from __future__ import annotations

import argparse
import logging.config
import sys
from collections.abc import Sequence
from typing import Any

from service.settings import Settings

log = logging.getLogger("service.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durable",
        description="Durable objects with WebSocket hibernation, event-sourced on PostgreSQL.",
        epilog="Every option falls back to DURABLE_<NAME> in the environment; "
        "DATABASE_URL selects the database (unset: an embedded PostgreSQL in --data-dir).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service for an application")
    serve.add_argument("app", help="a directory with app.py, a .py file, or module[:attribute]")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8787)")
    serve.add_argument("--node-id", dest="node_id", help="this node's name (default: hostname)")
    serve.add_argument(
        "--hibernate-after", dest="hibernate_after", type=float, help="idle seconds (default 10)"
    )
    serve.add_argument("--auto-migrate", dest="auto_migrate", action="store_const", const=True)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    for sub in (serve, migrate):
        sub.add_argument("--data-dir", dest="data_dir", help="embedded PostgreSQL data directory")
        sub.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING...")
    return parser


def _configure_logging(level: str) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
            "root": {"handlers": ["stderr"], "level": level.upper()},
            "loggers": {"aiohttp.access": {"level": "WARNING"}},
        }
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {
        k: v for k, v in vars(args).items() if v is not None and k not in ("command", "app")
    }
    settings = Settings(**overrides)
    _configure_logging(settings.log_level)
    if args.command == "migrate":
        _migrate(settings)
    else:
        _serve(settings, args.app)


def _database(settings: Settings) -> tuple[str, bool]:
    """The database URL, starting the embedded server when none is configured."""
    if settings.database_url:
        return settings.database_url, False
    from service.store import embedded

    url, _server = embedded.start(settings.data_dir / "pg")
    print(f"Embedded PostgreSQL: data in {(settings.data_dir / 'pg').resolve()}", flush=True)
    print(f"  connect with: psql '{url}'", flush=True)
    return url, True


def _migrate(settings: Settings) -> None:
    from service.store import database_url, migrate

    url, _ = _database(settings)
    migrate.upgrade(url)
    print(f"Migrated {database_url.redact(url)} to head.", flush=True)


def _serve(settings: Settings, target: str) -> None:
    from aiohttp import web

    from service.app import create_app
    from service.loader import load_application
    from service.store import migrate

    application = load_application(target)
    url, embedded = _database(settings)
    if embedded or settings.auto_migrate:
        migrate.upgrade(url)
    else:
        problem = migrate.check(url)
        if problem:
            sys.exit(f"error: {problem}")
    settings = settings.model_copy(update={"database_url": url})
    webapp = create_app(settings, application)
    print(f"Serving {target} at http://{settings.host}:{settings.port}/", flush=True)
    web.run_app(
        webapp,
        host=settings.host,
        port=settings.port,
        print=None,
        shutdown_timeout=settings.shutdown_timeout,
        handle_signals=True,
    )
