"""``durable serve APP``: run a node for an application until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from service import tuning
from service.cli import options
from service.cli.database import bring_up_to_date, database
from service.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the ``durable`` command."""
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
    options.add_options(serve, list(Settings.model_fields))
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Load the application, make sure the database is migrated, and serve."""
    from service.app import create_app
    from service.loader import load_application

    target: str = args.app
    application = load_application(target)
    try:
        loop_factory = tuning.loop_factory(settings.event_loop)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with database(settings) as (url, embedded):
        bring_up_to_date(url, embedded=embedded, auto_migrate=settings.auto_migrate)
        settings = settings.model_copy(update={"database_url": url})
        stop = _Stop()
        webapp = create_app(settings, application, on_fatal=stop.fatal)
        tuning.tune_gc(settings.gc_threshold)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_run(webapp, settings, target, stop))


class _Stop:
    """What ends the serving: a signal, or the node itself when it was declared dead."""

    def __init__(self) -> None:
        # Bound to the loop that first waits on it (the runner's), not to any here.
        self.event = asyncio.Event()
        #: Why the node stopped itself; None after a signal.
        self.reason: str | None = None

    def fatal(self, reason: str) -> None:
        self.reason = reason
        self.event.set()


async def _run(webapp: web.Application, settings: Settings, target: str, stop: _Stop) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (a second signal: at once).

    A node declared dead stops the same way, and exits with 1 so that a supervisor starts
    a new one."""
    from aiohttp import web

    from service.app import admin_banner, server_options, serving_at

    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        log.info("%s received: shutting down", signum.name, extra={"action": "shutdown"})
        for each in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(each)  # a second signal takes the default way out
        stop.event.set()

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
        await serving_at(webapp, f"{shown}:{port}")
        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        print(
            f"Serving {target} at http://{shown}:{port}/ as node {settings.node_id} "
            f"(event loop: {loop_name})",
            flush=True,
        )
        print(admin_banner(settings, f"http://{shown}:{port}"), flush=True)
        await stop.event.wait()
    finally:
        await runner.cleanup()
    if stop.reason is not None:
        print(f"error: {stop.reason}", file=sys.stderr)
        return 1
    log.info("stopped", extra={"action": "shutdown"})
    return 0
