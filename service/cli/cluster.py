"""``durable cluster --nodes N APP``: N nodes on one database behind HAProxy, on this machine.

The nodes are ``durable serve`` processes on free ports of 127.0.0.1, named node-1 to
node-N; HAProxy listens on ``--host``/``--port`` and sends each request to a node by a hash
of the object its path names (see ``haproxy``). With ``--gateways G --hosts H`` instead, the
nodes have roles: gateway-1 to gateway-G hold the clients (the balancer sends them there
alone) and host-1 to host-H run the objects. All of them stop together: on SIGINT or SIGTERM
the balancer stops taking connections, the nodes shut down gracefully (their clients get
1001 through it; gateways before hosts, so that the hosts record their clients' closes),
and the balancer ends with them. A node that dies meanwhile is reported and the others go
on serving, as a cluster does: the balancer's health checks move its share of objects to
them.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from service.cli import haproxy, options
from service.cli.children import Child
from service.cli.database import bring_up_to_date, database
from service.cli.errors import CommandError
from service.settings import Settings

#: Settings of the cluster itself; every other one given as a flag is passed to each node.
_OWN = frozenset({"host", "port", "node_id", "data_dir", "auto_migrate"})
#: Flags of `durable serve` that `durable cluster` takes otherwise or not at all.
_NOT_NODE = frozenset({"host", "port", "node_id", "role"})

#: Seconds a node gets to print its "Serving" line (it imports the application first).
_START_SECONDS = 120
#: Seconds, beyond --shutdown-timeout, a node gets to stop before it is killed.
_STOP_GRACE = 15
#: Seconds HAProxy gets to start listening, and to end after the nodes did.
_BALANCER_SECONDS = 10

_SERVING = re.compile(r"^Serving .* at (http://\S+?)/? as node ")

T = TypeVar("T")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cluster`` to the ``durable`` command."""
    cluster = commands.add_parser(
        "cluster",
        help="run several nodes and a load balancer (HAProxy) on this machine",
        description="Run N nodes of an application on one database, behind HAProxy on "
        "--host:--port, which hashes each request on the object in its path "
        "(/<binding>/<name>) so that an object's sockets all reach one node. The nodes "
        "listen on free ports of 127.0.0.1 as node-1 to node-N; their output is shown "
        "under their names. Ctrl-C or SIGTERM stops them all; a node that dies is reported "
        "and the others go on serving.",
    )
    cluster.add_argument(
        "app",
        help="a directory with an app.py, a .py file, or a module, "
        "each optionally followed by :ATTRIBUTE (default app)",
    )
    sizes = cluster.add_mutually_exclusive_group()
    sizes.add_argument(
        "--nodes",
        type=_count,
        metavar="N",
        help="how many nodes of role all, each holding clients and running objects (default 2)",
    )
    sizes.add_argument(
        "--gateways",
        type=_count,
        metavar="G",
        help="how many gateways (role gateway: they hold the clients, and the balancer sends "
        "clients to them alone); with --hosts, instead of --nodes",
    )
    cluster.add_argument(
        "--hosts",
        type=_count,
        metavar="H",
        help="how many hosts (role host: they run the objects, and serve no client); with "
        "--gateways",
    )
    cluster.add_argument(
        "--haproxy",
        default="haproxy",
        metavar="PATH",
        help="the HAProxy binary: a path, or a name looked up on PATH, then in /usr/sbin "
        "(default haproxy)",
    )
    # The balancer's address; the nodes take free ports of 127.0.0.1.
    cluster.add_argument(
        "--host",
        dest="host",
        metavar="HOST",
        help="address the balancer listens on (default 127.0.0.1) [DURABLE_HOST]",
    )
    cluster.add_argument(
        "--port",
        dest="port",
        metavar="PORT",
        help="port the balancer listens on (0: any free) (default 8787) [DURABLE_PORT]",
    )
    options.add_options(cluster, [name for name in Settings.model_fields if name not in _NOT_NODE])
    cluster.set_defaults(handler=run)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a number of nodes, at least 1 (got {text!r})")
    return value


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Check the application and the database once, then run the nodes and the balancer."""
    from service.loader import load_application

    if (args.gateways is None) != (args.hosts is None):
        raise CommandError("--gateways and --hosts go together: give both, or --nodes alone")
    if args.gateways is not None:
        roles = [("gateway", args.gateways), ("host", args.hosts)]
    else:
        roles = [("all", 2 if args.nodes is None else args.nodes)]
    binary = haproxy.find(args.haproxy)
    if binary is None:
        raise CommandError(
            f"durable cluster needs HAProxy, and {args.haproxy!r} is not found: " + haproxy.INSTALL
        )
    load_application(args.app)  # its errors, once, before anything starts
    with database(settings) as (url, embedded):
        # Migrated here, once, as `durable serve` would; the nodes only check.
        bring_up_to_date(url, embedded=embedded, auto_migrate=settings.auto_migrate)
        node_options = _passed_on(args)
        if embedded:  # the server this process started, shared by the nodes
            node_options += ["--database-url", url]
        cluster = _Cluster(args.app, roles, node_options, binary, settings)
        with asyncio.Runner() as runner:
            return runner.run(cluster.run())


def _passed_on(args: argparse.Namespace) -> list[str]:
    """The flags given to the cluster that each node takes too."""
    passed: list[str] = []
    for name, value in options.flags(args).items():
        if name in _OWN:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            passed.append(flag if value else "--no-" + flag[2:])
        else:
            passed += [flag, str(value)]
    return passed


class _Cluster:
    """The nodes and the balancer of one run, started and stopped in order."""

    def __init__(
        self,
        app: str,
        roles: list[tuple[str, int]],
        node_options: list[str],
        binary: str,
        settings: Settings,
    ) -> None:
        self.app = app
        #: Each node's name and role: node-N for role all, gateway-N and host-N otherwise.
        self.roles = {
            f"{'node' if role == 'all' else role}-{n}": role
            for role, count in roles
            for n in range(1, count + 1)
        }
        self.names = list(self.roles)
        self.node_options = node_options
        self.binary = binary
        self.settings = settings
        self.width = max(len(name) for name in [*self.names, "haproxy"])
        self.nodes: list[Child] = []
        self.balancer: Child | None = None
        self.stopping = asyncio.Event()
        #: Whether something went wrong on the way: the exit code is 1 then.
        self.failed = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            with tempfile.TemporaryDirectory(prefix="durable-cluster-") as directory:
                if await self._start(Path(directory)):
                    await self._supervise()
                await self._stop()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        return 1 if self.failed else 0

    def _on_signal(self, signum: signal.Signals) -> None:
        if not self.stopping.is_set():
            _say(f"{signum.name} received: stopping the balancer, then the nodes")
            self.stopping.set()
            return
        _say(f"{signum.name} received again: killing every process of the cluster")
        self.failed = True
        for child in self._children():
            child.signal(signal.SIGKILL)

    def _children(self) -> list[Child]:
        return [*self.nodes, *([self.balancer] if self.balancer else [])]

    # -- start ------------------------------------------------------------------------

    async def _start(self, directory: Path) -> bool:
        """Start the hosts, then the other nodes, then the balancer in front of them; whether
        all of it runs."""
        command = [sys.executable, "-m", "service", "serve", self.app, "--host", "127.0.0.1"]
        command += ["--port", "0", "--no-auto-migrate", *self.node_options]
        # Hosts first: a gateway that starts once they serve places objects on all of them
        # from its first request (it reads the live hosts at start, then once a heartbeat).
        hosts = [name for name in self.names if self.roles[name] == "host"]
        others = [name for name in self.names if self.roles[name] != "host"]
        started: dict[str, Child] = {}
        found: dict[str, re.Match[str] | None] = {}
        for group in (hosts, others):
            for name in group:
                own = ["--node-id", name, "--role", self.roles[name]]
                started[name] = await Child.start(name, [*command, *own], self.width)
                self.nodes.append(started[name])
            urls = await self._unless_stopped(
                asyncio.gather(*(started[name].wait_for(_SERVING) for name in group)), "serving"
            )
            if urls is None or None in urls:
                return False
            found.update(zip(group, urls, strict=True))
        urls = [found[name] for name in self.names]
        try:
            port = _free_port(self.settings.host, self.settings.port)
        except OSError as error:
            _say(f"error: the balancer cannot listen on {self.settings.host}: {error}")
            self.failed = True
            return False
        addresses = [match.group(1) for match in urls if match is not None]
        # Clients go to the nodes that hold them: not to hosts, which answer them 421.
        servers = [
            (name, "127.0.0.1", _port_of(url))
            for name, url in zip(self.names, addresses, strict=True)
            if self.roles[name] != "host"
        ]
        path = directory / "haproxy.cfg"
        path.write_text(haproxy.config(self.settings.host, port, servers))
        # -db: in the foreground, as a child that ends with us, and stopped by our signals.
        self.balancer = await Child.start(
            "haproxy", [self.binary, "-db", "-f", str(path)], self.width
        )
        if not await self._unless_stopped(self._listening(port), "listening"):
            return False
        self._banner(port, addresses)
        return True

    async def _unless_stopped(self, work: Awaitable[T], what: str) -> T | None:
        """The result of ``work``; None if a signal or a process's exit came first."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.stopping.wait())
        exits = {asyncio.ensure_future(child.process.wait()): child for child in self._children()}
        try:
            await asyncio.wait([task, stopped, *exits], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in [stopped, *exits]:
                future.cancel()
        ended = [child for child in self._children() if not child.running]
        for child in ended:
            _say(
                f"error: {child.name} exited with status {child.process.returncode} "
                f"before it was {what}"
            )
        if ended or not task.done():
            self.failed = self.failed or bool(ended)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return None
        return task.result()

    async def _listening(self, port: int) -> bool:
        """Wait until the balancer accepts connections."""
        host = self.settings.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1" if host != "::" else "::1"
        try:
            async with asyncio.timeout(_BALANCER_SECONDS):
                while True:
                    try:
                        _, writer = await asyncio.open_connection(host, port)
                    except OSError:
                        await asyncio.sleep(0.05)
                        continue
                    writer.close()
                    return True
        except TimeoutError:
            _say(f"error: HAProxy did not listen on port {port} within {_BALANCER_SECONDS} s")
            self.failed = True
            return False

    def _banner(self, port: int, urls: list[str]) -> None:
        shown = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        balanced = [name for name in self.names if self.roles[name] != "host"]
        hosts = len(self.names) - len(balanced)
        over = f"{len(balanced)} gateways, {hosts} hosts" if hosts else f"{len(balanced)} nodes"
        lines = [
            f"Balancing {self.app} over {over} at http://{shown}:{port}/ "
            "(HAProxy, by the object in the path: /<binding>/<name>)"
        ]
        lines += [
            f"  {name:<{self.width}}  {url}/"
            + ("  (host: runs objects, serves no client)" if self.roles[name] == "host" else "")
            for name, url in zip(self.names, urls, strict=True)
        ]
        lines.append("Ctrl-C stops them all.")
        print("\n".join(lines), flush=True)

    # -- run --------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Until a signal: report a process that ends; the others go on while a node runs."""
        exits = {asyncio.ensure_future(child.process.wait()): child for child in self._children()}
        stopped = asyncio.ensure_future(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                done, _ = await asyncio.wait([stopped, *exits], return_when=asyncio.FIRST_COMPLETED)
                for future in done & exits.keys():
                    self._ended(exits.pop(future))
        finally:
            for future in [stopped, *exits]:
                future.cancel()

    def _ended(self, child: Child) -> None:
        self.failed = True
        status = child.process.returncode
        if child is self.balancer:
            _say(f"error: HAProxy exited with status {status}: stopping the nodes")
            self.stopping.set()
            return
        serving = [node.name for node in self.nodes if node.running]
        if not serving:
            _say(f"error: {child.name} exited with status {status}, the last node: stopping")
            self.stopping.set()
            return
        _say(
            f"error: {child.name} exited with status {status}; {', '.join(serving)} go on "
            "serving (the balancer's health checks send its objects' traffic to them)"
        )

    # -- stop -------------------------------------------------------------------------

    async def _stop(self) -> None:
        """Balancer first (it stops listening and lets open connections finish), then the
        nodes gracefully (their clients get 1001 through it), killed after a timeout; then
        the balancer, which has nothing left to carry."""
        if self.balancer is not None:
            self.balancer.signal(signal.SIGUSR1)  # a soft stop
        # Gateways (and nodes of role all) first: the hosts then record their clients'
        # closes, rather than leave them to whichever host starts next.
        await self._stop_nodes([n for n in self.nodes if self.roles[n.name] != "host"])
        await self._stop_nodes([n for n in self.nodes if self.roles[n.name] == "host"])
        if self.balancer is not None and not await self.balancer.wait(_BALANCER_SECONDS):
            self.balancer.signal(signal.SIGTERM)  # a hard stop
            if not await self.balancer.wait(_BALANCER_SECONDS):
                self.balancer.signal(signal.SIGKILL)
                await self.balancer.process.wait()
        await asyncio.gather(*(child.finish() for child in self._children()))

    async def _stop_nodes(self, nodes: list[Child]) -> None:
        """SIGTERM, then wait; killed after the shutdown timeout and a grace period."""
        running = [node for node in nodes if node.running]
        for node in running:
            node.signal(signal.SIGTERM)
        timeout = self.settings.shutdown_timeout + _STOP_GRACE
        ended = await asyncio.gather(*(node.wait(timeout) for node in running))
        for node, stopped in zip(running, ended, strict=True):
            if not stopped:
                _say(f"error: {node.name} did not stop within {timeout:g} s: killing it")
                node.signal(signal.SIGKILL)
                await node.process.wait()
                self.failed = True
            # -SIGTERM: the signal came before the node was up to handle it, which is fine.
            elif node.process.returncode not in (0, -signal.SIGTERM):
                _say(f"error: {node.name} stopped with status {node.process.returncode}")
                self.failed = True


def _free_port(host: str, port: int) -> int:
    """``port``, checked free on ``host``; or, for 0, a free port there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As a server that is about to listen there would: a port whose last connections
        # linger in TIME_WAIT is free to it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        chosen: int = probe.getsockname()[1]
        return chosen


def _port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
