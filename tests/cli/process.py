"""Running `durable` as a real process: start it, read its output, signal it, always reap it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

APPS = Path(__file__).parent / "apps"
ECHO = str(APPS / "echo.py")

_SERVING = re.compile(r"Serving .* at (http://\S+?)/? as node")


def child_env(
    overrides: Mapping[str, str] | None = None, *, database_url: str | None = None
) -> dict[str, str]:
    """The environment of a child: ours without DURABLE_* or DATABASE_URL, plus overrides.

    ``database_url`` None means no database configured at all (the embedded default).
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DURABLE_") and k != "DATABASE_URL"
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(overrides or {})
    return env


def run(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `durable` to completion (``python -m service``)."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Durable:
    """A running `durable` process and everything it has printed so far."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.url = ""
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``; fails on timeout or exit."""
        regex = re.compile(pattern)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for line in self.lines:
                if match := regex.search(line):
                    return match
            if self._reader.done():
                raise AssertionError(
                    f"durable exited ({self.process.returncode}) before printing {pattern!r}:\n"
                    + self.output
                )
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout} s:\n" + self.output)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def serving(self, timeout: float = 60) -> str:
        """Wait for the "Serving ... at URL" line; return the base URL."""
        self.url = (await self.wait_for(_SERVING.pattern, timeout)).group(1)
        return self.url

    async def exited(self, timeout: float) -> int:
        """Wait for the process to end; its exit code."""
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"durable did not exit within {timeout} s:\n" + self.output
            ) from None
        await self._reader
        return code

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``signum`` and wait for the process to end; its exit code."""
        self.process.send_signal(signum)
        return await self.exited(timeout)


@contextlib.asynccontextmanager
async def durable(*args: str, env: Mapping[str, str]) -> AsyncIterator[Durable]:
    """Start `durable` in a session of its own; it is killed on the way out if still running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    node = Durable(process)
    try:
        yield node
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        node._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await node._reader
        print(f"--- durable {' '.join(args)} ---\n{node.output}")  # shown if the test fails


def with_database(url: str, dbname: str) -> str:
    """The same server URL with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@contextlib.asynccontextmanager
async def scratch_database(server_url: str, name: str) -> AsyncIterator[str]:
    """An empty database (not migrated) on the server of ``server_url``, dropped afterwards.

    Its name is ``name`` with a random suffix: suites running at once on one server (CI and a
    developer's run) must not meet in it."""
    name = f"{name}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(server_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
