"""The processes ``durable cluster`` runs: each one's output, line by line under its name."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

#: Longest output line passed on whole; a longer one is left out, and says so.
_LINE_LIMIT = 1 << 20


class Child:
    """A process of the cluster: its output goes to ours, each line after ``name |``.

    It runs in a process group of its own, so a Ctrl-C in the terminal reaches only the
    cluster, which then stops its processes in order.
    """

    def __init__(self, name: str, process: asyncio.subprocess.Process, width: int) -> None:
        self.name = name
        self.process = process
        self._prefix = f"{name:<{width}} | "
        #: The stdout lines seen so far, for the cluster to find what it waits for.
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            asyncio.ensure_future(self._copy(process.stdout, sys.stdout, keep=True)),
            asyncio.ensure_future(self._copy(process.stderr, sys.stderr, keep=False)),
        ]

    @classmethod
    async def start(cls, name: str, command: Sequence[str], width: int) -> Child:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
            process_group=0,
        )
        return cls(name, process, width)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def _copy(self, stream: asyncio.StreamReader, out: TextIO, *, keep: bool) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # longer than the limit: what was read of it is dropped
                raw = b"(a line longer than 1 MiB, left out)\n"
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\n")
            print(self._prefix + line, file=out, flush=True)
            if keep:
                self.lines.append(line)
                self._changed.set()
        self._changed.set()

    async def wait_for(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """The first stdout line matching ``pattern``; None if the output ends first."""
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if match := pattern.search(line):
                    return match
            seen = len(self.lines)
            if all(reader.done() for reader in self._readers[:1]):
                return None
            self._changed.clear()
            await self._changed.wait()

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` unless the process has ended."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process to end; whether it did."""
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def finish(self, timeout: float = 5) -> None:
        """Once the process has ended: the rest of its output, passed on (what a process it
        left behind still writes to the same pipes is not waited for)."""
        await asyncio.wait(self._readers, timeout=timeout)
        for reader in self._readers:
            reader.cancel()
