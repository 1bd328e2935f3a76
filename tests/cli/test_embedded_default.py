"""Without DATABASE_URL, `durable` runs on an embedded PostgreSQL in its data directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.cli.process import ECHO, child_env, durable, run
from tests.examples.support import receive_type
from tests.support import eventually

pytestmark = pytest.mark.slow


def server_pid(data_dir: Path) -> int | None:
    """The postmaster's process id from ``postmaster.pid``, or None if it is not running."""
    try:
        first_line = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first_line)
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory under /tmp that the embedded server's own system user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="durable-embedded-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        pid = server_pid(path / "data" / "pg")
        if pid is not None and _alive(pid):  # a failed test left it running: fast shutdown
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        shutil.rmtree(path, ignore_errors=True)


async def _round_trip(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        ws = await session.ws_connect(f"{url}/echo/room")
        assert (await ws.receive_str(timeout=10)).startswith("id ")
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=10) == "echo hello"
        await ws.close()
        async with session.get(f"{url}/echo/room") as response:
            assert response.status == 200
            return await response.text()


async def _postgres_gone(pgdata: Path, pid: int) -> None:
    await eventually(lambda: not _alive(pid), timeout=10)
    assert not (pgdata / "postmaster.pid").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_without_database_url(base: Path, signum: signal.Signals) -> None:
    data = base / "data"
    pgdata = data / "pg"
    env = child_env()  # no DATABASE_URL, no DURABLE_*
    assert "DATABASE_URL" not in env
    args = ("serve", ECHO, "--data-dir", str(data), "--port", "0", "--node-id", "solo")
    async with durable(*args, env=env) as node:
        url = await node.serving(timeout=90)
        assert f"Embedded PostgreSQL: data in {pgdata}" in node.output
        assert f"connect with: psql 'postgresql://postgres:@/postgres?host={pgdata}'" in node.output
        assert "Running upgrade" in node.output  # migrated before serving
        assert "Context impl" not in node.output  # without Alembic's preamble
        pid = server_pid(pgdata)
        assert pid is not None and _alive(pid)
        assert await _round_trip(url) == "1"
        if signum == signal.SIGINT:
            # As Ctrl-C in a terminal does: to the whole process group. The server runs in a
            # session of its own, so it is not interrupted before the node has flushed.
            os.killpg(node.process.pid, signal.SIGINT)
            code = await node.exited(timeout=30)
        else:
            code = await node.stop(signal.SIGTERM, timeout=30)
        assert code == 0, node.output
        assert "Traceback" not in node.output
        await _postgres_gone(pgdata, pid)

    if signum == signal.SIGTERM:
        # Same data directory again: the server starts on the existing data, state is kept.
        async with durable(*args, env=env) as node:
            url = await node.serving(timeout=90)
            assert await _round_trip(url) == "2"
            pid = server_pid(pgdata)
            assert pid is not None
            assert await node.stop(timeout=30) == 0
            await _postgres_gone(pgdata, pid)


async def test_migrate_without_database_url(base: Path) -> None:
    data = base / "data"
    result = await asyncio.to_thread(run, "migrate", "--data-dir", str(data), env=child_env())
    assert result.returncode == 0, result.stderr
    assert f"Embedded PostgreSQL: data in {data / 'pg'}" in result.stdout
    assert "to the newest revision" in result.stdout
    assert (data / "pg" / "PG_VERSION").exists()
    assert server_pid(data / "pg") is None  # stopped on the way out


CHAT = str(Path(__file__).parents[2] / "examples" / "chat")


async def test_serve_the_chat_without_database_url(base: Path) -> None:
    data = base / "data"
    args = ("serve", CHAT, "--data-dir", str(data), "--port", "0", "--node-id", "chat")
    async with durable(*args, env=child_env()) as node:
        url = await node.serving(timeout=90)
        pid = server_pid(data / "pg")
        assert pid is not None
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/") as response:
                assert response.status == 200
                assert "<html" in (await response.text()).lower()
            alice = await session.ws_connect(f"{url}/chat/lobby?username=alice")
            assert (await receive_type(alice, "history"))["messages"] == []
            await alice.send_str(json.dumps({"type": "message", "text": "anyone here?"}))
            assert (await receive_type(alice, "message"))["text"] == "anyone here?"
            bob = await session.ws_connect(f"{url}/chat/lobby?username=bob")
            history = (await receive_type(bob, "history"))["messages"]
            assert [m["text"] for m in history] == ["anyone here?"]
            await bob.send_str(json.dumps({"type": "message", "text": "hi alice"}))
            assert (await receive_type(alice, "message"))["username"] == "bob"
            assert (await receive_type(bob, "message"))["text"] == "hi alice"
            assert await node.stop(timeout=30) == 0
            for ws in (alice, bob):  # the Close frame the node sent before it went
                close = await ws.receive(timeout=10)
                assert (close.type, close.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        assert "Traceback" not in node.output
        await _postgres_gone(data / "pg", pid)
