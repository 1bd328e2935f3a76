"""`durable cluster`: real nodes behind a real HAProxy on 127.0.0.1, chat clients through it.

The balancer hashes on the room in the path, so a room's sockets and the room itself share
one node; rooms spread over the nodes; a node that dies is reported while the rest serve;
SIGTERM stops every process of the cluster, its clients closed with 1001.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.cli import haproxy
from tests.cli.process import Durable, child_env, durable, run
from tests.examples.support import EXAMPLES
from tests.support import eventually

pytestmark = pytest.mark.slow

CHAT = str(EXAMPLES / "chat")

_BALANCER = re.compile(r"^Balancing .* at (http://\S+?)/? \(HAProxy")
_NODE = re.compile(r"^  ((?:node|gateway|host)-\d+)\s+(http://\S+?)/(?:  \(host: .*\))?$")


@dataclass
class Cluster:
    """A running `durable cluster`: its process, its balancer's URL, its nodes' URLs."""

    process: Durable
    url: str = ""
    nodes: dict[str, str] = field(default_factory=dict)
    #: Process ids of what the cluster started (the nodes and HAProxy), by command name.
    children: dict[int, str] = field(default_factory=dict)


def _children_of(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``: process id -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: the fields after it are fixed.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found[int(entry.name)] = command
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended; only its parent has not reaped it yet.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@contextlib.asynccontextmanager
async def cluster(
    *args: str,
    env: dict[str, str],
    size: tuple[str, ...] = ("--nodes", "2"),
    timeout: float = 90,
) -> AsyncIterator[Cluster]:
    """`durable cluster` serving; whatever it started is killed on the way out if alive."""
    async with durable("cluster", *size, "--port", "0", *args, env=env) as p:
        running = Cluster(p)
        try:
            running.url = (await p.wait_for(_BALANCER.pattern, timeout)).group(1)
            await p.wait_for(r"^Ctrl-C stops them all\.$", 5)
            for line in p.lines:
                if match := _NODE.match(line):
                    running.nodes[match.group(1)] = match.group(2)
            running.children = _children_of(p.process.pid)
            yield running
        finally:
            for pid in running.children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class Chat:
    """A chat client: the published lines it got, as {"type": ...} dicts."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def say(self, text: str) -> None:
        await self.ws.send_str(json.dumps({"type": "message", "text": text}))

    async def expect(self, kind: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """The next published line of ``kind`` with these fields (others are passed over)."""
        while True:
            message = await self.ws.receive(timeout=timeout)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frame = json.loads(message.data)
            data = frame.get("data", frame)
            if data["type"] == kind and all(data.get(k) == v for k, v in fields.items()):
                return dict(data)


async def join(
    http: aiohttp.ClientSession, url: str, room: str, user: str, timeout: float = 10
) -> Chat:
    ws = await http.ws_connect(f"{url}/chat/{room}?username={user}")
    chat = Chat(ws)
    await chat.expect("join", timeout, username=user)
    return chat


async def socket_nodes(sql: asyncpg.Connection, room: str) -> set[str]:
    """The nodes that hold the room's open sockets."""
    rows = await sql.fetch(
        "SELECT DISTINCT w.node FROM websockets AS w JOIN objects AS o USING (object_id)"
        " WHERE o.name = $1 AND w.closed_at IS NULL",
        room,
    )
    return {row["node"] for row in rows}


async def room_owner(sql: asyncpg.Connection, room: str) -> str | None:
    owner: str | None = await sql.fetchval("SELECT owner_node FROM objects WHERE name = $1", room)
    return owner


async def test_a_rooms_clients_share_its_node_rooms_spread_and_sigterm_stops_it_all(
    database_url: str, sql: asyncpg.Connection
) -> None:
    env = child_env(database_url=database_url)
    async with cluster(CHAT, env=env) as running, aiohttp.ClientSession() as http:
        assert set(running.nodes) == {"node-1", "node-2"}
        commands = sorted(running.children.values())
        assert len(commands) == 3, commands
        assert sum(" serve " in c and "--node-id" in c for c in commands) == 2
        assert sum(Path(c.split()[0]).name == "haproxy" for c in commands) == 1

        # Three clients of one room through the balancer: one node holds them all, and
        # runs the room; and they chat.
        ada, bob, cy = [await join(http, running.url, "lobby", who) for who in "abc"]
        await ada.say("hello")
        for chat in (ada, bob, cy):
            await chat.expect("message", username="a", text="hello")
        holders = await socket_nodes(sql, "lobby")
        assert len(holders) == 1
        assert await room_owner(sql, "lobby") in holders

        # Rooms spread over both nodes, each with its sockets where it runs.
        rooms = [f"room-{n}" for n in range(12)]
        clients = [await join(http, running.url, room, "u") for room in rooms]
        placed = {room: await socket_nodes(sql, room) for room in rooms}
        assert all(len(nodes) == 1 for nodes in placed.values()), placed
        assert set().union(*placed.values()) == {"node-1", "node-2"}
        for room in rooms:
            assert {await room_owner(sql, room)} == placed[room]

        # SIGTERM: every client is closed by its node (1001, through the balancer), and
        # every process of the cluster ends.
        assert await running.process.stop(signal.SIGTERM, timeout=60) == 0
        for chat in (ada, bob, cy, *clients):
            message = await chat.ws.receive(timeout=10)
            while message.type == aiohttp.WSMsgType.TEXT:
                message = await chat.ws.receive(timeout=10)
            # The node's close frame (read after the cluster ended, so the client's answer
            # to it had nowhere to go: the socket's own close code is 1006).
            assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001), message
        assert not [pid for pid in running.children if _alive(pid)]
        output = running.process.output
        assert "SIGTERM received: stopping the balancer, then the nodes" in output
        assert "node-1  | " in output and "node-2  | " in output
        assert "Traceback" not in output


async def test_a_node_that_dies_is_reported_and_the_rest_serve_its_rooms(
    database_url: str, sql: asyncpg.Connection
) -> None:
    env = child_env(database_url=database_url)
    async with (
        cluster(CHAT, "--lease-timeout", "2", env=env) as running,
        aiohttp.ClientSession() as http,
    ):
        rooms = [f"room-{n}" for n in range(12)]
        for room in rooms:
            chat = await join(http, running.url, room, "u")
            await chat.ws.close()
        on_node_1 = [room for room in rooms if await room_owner(sql, room) == "node-1"]
        assert on_node_1
        node_1 = next(pid for pid, c in running.children.items() if "node-1" in c.split())
        os.kill(node_1, signal.SIGKILL)
        await running.process.wait_for(r"^error: node-1 exited with status -9; node-2 go", 10)

        async def served_by_node_2() -> bool:
            # The balancer's checks take node-1 out, node-2 takes its rooms after the lease.
            try:
                chat = await join(http, running.url, on_node_1[0], "v", timeout=2)
            except (aiohttp.ClientError, TimeoutError):
                return False
            await chat.say("still here")
            await chat.expect("message", text="still here")
            await chat.ws.close()
            return await room_owner(sql, on_node_1[0]) == "node-2"

        await eventually(served_by_node_2, timeout=20)
        # A node died on the way: the cluster stops cleanly, and says it failed.
        assert await running.process.stop(signal.SIGTERM, timeout=60) == 1
        assert not [pid for pid in running.children if _alive(pid)]


async def test_gateways_and_hosts_behind_the_balancer_which_sends_clients_to_gateways_alone(
    database_url: str, sql: asyncpg.Connection
) -> None:
    env = child_env(database_url=database_url)
    size = ("--gateways", "2", "--hosts", "2")
    async with (
        cluster(CHAT, "--lease-timeout", "2", env=env, size=size) as running,
        aiohttp.ClientSession() as http,
    ):
        assert set(running.nodes) == {"gateway-1", "gateway-2", "host-1", "host-2"}
        assert "over 2 gateways, 2 hosts at" in running.process.output
        roles = dict(await sql.fetch("SELECT node_id, role FROM live_nodes"))
        assert roles == {
            "gateway-1": "gateway",
            "gateway-2": "gateway",
            "host-1": "host",
            "host-2": "host",
        }
        # A host sends clients away; the balancer sends them to gateways only.
        async with http.get(f"{running.nodes['host-1']}/chat/lobby") as response:
            assert response.status == 421
        rooms = [f"room-{n}" for n in range(8)]
        clients = [await join(http, running.url, room, "u") for room in rooms]
        for chat, room in zip(clients, rooms, strict=True):
            await chat.say(f"in {room}")
            await chat.expect("message", text=f"in {room}")
        held = set().union(*[await socket_nodes(sql, room) for room in rooms])
        assert held <= {"gateway-1", "gateway-2"}
        owners = {await room_owner(sql, room) for room in rooms}
        assert owners == {"host-1", "host-2"}  # rendezvous hashing spreads eight rooms

        assert await running.process.stop(signal.SIGTERM, timeout=60) == 0
        for chat in clients:
            message = await chat.ws.receive(timeout=10)
            while message.type == aiohttp.WSMsgType.TEXT:
                message = await chat.ws.receive(timeout=10)
            assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001), message
        assert not [pid for pid in running.children if _alive(pid)]
        assert "Traceback" not in running.process.output
        # The gateways stopped first: the hosts recorded every client's close.
        assert await sql.fetchval("SELECT count(*) FROM presence") == 0


def test_gateways_go_with_hosts() -> None:
    result = run("cluster", CHAT, "--gateways", "2", env=child_env())
    assert result.returncode == 1
    assert "--gateways and --hosts go together" in result.stderr


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory under /tmp that the embedded server's own system user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="durable-cluster-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_without_database_url_one_embedded_server_serves_every_node(base: Path) -> None:
    data = base / "data"
    env = child_env()
    async with (
        cluster(CHAT, "--data-dir", str(data), env=env) as running,
        aiohttp.ClientSession() as http,
    ):
        output = running.process.output
        # Started (and migrated) once, by the cluster; the nodes connect to it.
        assert output.count("Embedded PostgreSQL: data in") == 1
        assert output.count("Running upgrade  -> ") == 1
        for name in ("node-1", "node-2"):
            assert f"{name}  | Database: postgresql://" in output
        postmaster = data / "pg" / "postmaster.pid"
        assert postmaster.exists()
        chat = await join(http, running.url, "lobby", "a")
        await chat.say("hi")
        await chat.expect("message", text="hi")
        assert await running.process.stop(signal.SIGINT, timeout=60) == 0
    await eventually(lambda: not postmaster.exists(), timeout=10)


def test_without_haproxy_the_command_says_what_to_install() -> None:
    result = run("cluster", CHAT, "--haproxy", "haproxy-not-installed", env=child_env())
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: durable cluster needs HAProxy")
    assert "apt-get install haproxy" in lines[0]


def test_the_config_the_command_writes_is_valid_for_haproxy(tmp_path: Path) -> None:
    binary = haproxy.find("haproxy")
    assert binary is not None, "HAProxy is not installed (CI installs it)"
    servers = [("node-1", "127.0.0.1", 40001), ("node-2", "127.0.0.1", 40002)]
    for host in ("127.0.0.1", "::1"):
        path = tmp_path / "haproxy.cfg"
        path.write_text(haproxy.config(host, 8787, servers))
        checked = subprocess.run(
            [binary, "-c", "-f", str(path)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "Configuration file is valid" in checked.stdout


def test_the_readme_shows_the_balancer_setting_the_command_writes() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Running several nodes\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```\n(backend nodes\n.*?)^```$", section, re.M | re.S)
    assert haproxy.OBJECT_HASH in block
    written = haproxy.config("127.0.0.1", 8787, [("node-1", "127.0.0.1", 40001)])
    for line in block.splitlines():
        assert line.split("#")[0].strip() in written, line
