"""Load-generator processes that speak JSON lines: one command per line on stdin, one
message per line on stdout, stderr kept aside for the error report.

A reader task drains stdout as lines come, so a generator never blocks on a full pipe while
the benchmark is busy elsewhere; ``receive`` takes the next message from what it read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import processes


class ChildError(Exception):
    """A load generator did not answer in time, answered out of turn, or died."""


class Child:
    """One ``python -m <module>`` load generator; start it with ``Child.start``."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, stderr: Any) -> None:
        self.name = name
        self.process = process
        self._stderr = stderr
        self._messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, name: str, module: str, argv: Sequence[str] = (), *, line_limit: int = 1 << 26
    ) -> Child:
        """Start ``module`` with ``argv``; ``line_limit`` bounds one message's length."""
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", module, *argv),
            cwd=processes.ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            limit=line_limit,
        )
        return cls(name, process, stderr)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            async for line in self.process.stdout:
                await self._messages.put(json.loads(line))
        finally:
            await self._messages.put(None)

    def send(self, command: dict[str, Any]) -> None:
        """Write one command (the pipe buffers it; ``drain`` waits for room)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")

    async def drain(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.drain()

    async def ask(
        self,
        command: dict[str, Any],
        event: str,
        timeout: float,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Send ``command`` and wait for the ``event`` that answers it."""
        self.send(command)
        await self.drain()
        return await self.receive(timeout, event, progress=progress)

    async def receive(
        self,
        timeout: float,
        event: str | None = None,
        *,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The next message, or the next whose ``event`` is ``event`` when one is named.

        Messages before it with ``"event": "progress"`` go to ``progress`` (or are passed
        over); any other one in its place is an error, as are silence for ``timeout`` seconds
        and an exit.
        """
        what = repr(event) if event else "an answer"
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = await asyncio.wait_for(self._messages.get(), deadline - time.monotonic())
            except TimeoutError:
                raise ChildError(f"{self.name}: no {what} after {timeout:.0f} s") from None
            if message is None:
                code = await self.process.wait()
                raise ChildError(f"{self.name} exited with {code}:\n{self.stderr_tail()}")
            if event is None or message.get("event") == event:
                return message
            if message.get("event") == "progress":
                if progress is not None:
                    progress(message)
                continue
            raise ChildError(f"{self.name}: expected {what}, got {message.get('event')!r}")

    def cpu_seconds(self) -> float:
        """CPU seconds the process has used so far (0 once it has gone)."""
        with contextlib.suppress(OSError):
            return processes.cpu_seconds(self.process.pid)
        return 0.0

    def stderr_tail(self, lines: int = 15) -> str:
        """The last lines the process wrote to stderr."""
        self._stderr.seek(0)
        return b"\n".join(self._stderr.read().splitlines()[-lines:]).decode(errors="replace")

    async def stop(self, goodbye: dict[str, Any] | None = None, grace: float = 10) -> None:
        """Ask the process to end (``goodbye``, then end of input); after ``grace`` seconds
        SIGTERM, 5 seconds later SIGKILL. Then let go of its pipes."""
        stdin = self.process.stdin
        if self.process.returncode is None and stdin is not None and not stdin.is_closing():
            with contextlib.suppress(OSError):
                if goodbye is not None:
                    self.send(goodbye)
                stdin.close()
        for end, wait in ((None, grace), (self.process.terminate, 5.0), (self.process.kill, None)):
            if end is not None and self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    end()
            try:
                await asyncio.wait_for(self.process.wait(), wait)
                break
            except TimeoutError:
                continue
        with contextlib.suppress(Exception):
            await self._reader
        self._stderr.close()
