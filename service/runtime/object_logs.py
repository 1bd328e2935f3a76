"""Object logs: what an object's code logs through ``logging`` while one of its turns runs,
kept with that turn and committed with its events.

One handler sits on the root logger (``install``); it keeps nothing by itself. A turn sets
``CAPTURE`` (a context variable) to its ``TurnLogs`` while its handler runs, so a record
emitted from that handler, from anything it awaits, and from tasks it starts (which copy
the context) goes to that turn, and concurrent turns of other objects on the same event
loop never see each other's. Records still go to every other handler as before: the node's
own log is unchanged.

What is kept: records at the handler's level or above (``--object-log-level``) from any
logger but the node's own (``service.*``), and, of those, the one the node logs when the
object's handler raises (with its traceback). A turn keeps at most ``limit`` bytes of
messages; once a record does not fit, it and every later one of the turn are dropped, and
the turn ends with one line that says how many records and bytes were.

A line logged after its turn ended (by a task the turn started, still running) goes with
the object's running turn, or a turn of its own, as that task's writes do.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable

from service.api import text as api_text
from service.ports.records import LogLine

#: The lines of the turn whose code runs now (None outside any turn).
CAPTURE: contextvars.ContextVar[TurnLogs | None] = contextvars.ContextVar("turn_logs", default=None)

#: Bytes of log messages a turn keeps by default (``--log-bytes-per-turn``).
DEFAULT_LIMIT = 64 * 1024

#: The logger of the line that says what a turn's bound dropped.
LOGGER = "durable.logs"

#: Guards each turn's lines: records may come from other threads (``asyncio.to_thread``
#: copies the context), while the turn ends on the event loop's.
_LOCK = threading.Lock()


class TurnLogs:
    """One turn's lines, at most ``limit`` bytes of messages (UTF-8)."""

    __slots__ = (
        "_after",
        "_dropped",
        "_dropped_bytes",
        "_lines",
        "_open",
        "_size",
        "limit",
        "object_id",
    )

    def __init__(
        self, object_id: str, limit: int, after: Callable[[LogLine, int], None] | None = None
    ) -> None:
        #: The object (a failure the node logs of its handler is kept only by its turn).
        self.object_id = object_id
        self.limit = limit
        #: Where lines go once the turn has ended.
        self._after = after
        self._lines: list[LogLine] = []
        self._size = 0
        self._dropped = 0
        self._dropped_bytes = 0
        self._open = True

    def add(self, line: LogLine, size: int) -> None:
        """Keep a line of ``size`` bytes, unless the bound is reached; after the turn, hand
        it on."""
        with _LOCK:
            if self._open:
                if self._dropped or self._size + size > self.limit:
                    self._dropped += 1
                    self._dropped_bytes += size
                else:
                    self._size += size
                    self._lines.append(line)
                return
        if self._after is not None:
            self._after(line, size)

    def close(self) -> list[LogLine]:
        """End the turn: its lines, the last saying what the bound dropped, if anything."""
        with _LOCK:
            self._open = False
            lines = self._lines
            if self._dropped:
                lines.append(
                    LogLine(
                        at=time.time(),
                        level=logging.WARNING,
                        logger=LOGGER,
                        message=f"{self._dropped} more log records of this turn "
                        f"({self._dropped_bytes} bytes) were dropped: a turn keeps at most "
                        f"{self.limit} bytes of log messages (--log-bytes-per-turn)",
                    )
                )
            return lines


class ObjectLogHandler(logging.Handler):
    """Hands each record emitted inside a turn to that turn's lines."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        # The message, then the traceback of its exception and its stack, if any.
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        logs = CAPTURE.get()
        if logs is None or not _kept(record, logs.object_id):
            return
        try:
            message = api_text.storable(self.format(record))
            size = len(message.encode("utf-8"))
            name = api_text.storable(record.name)
            logs.add(LogLine(record.created, record.levelno, name, message), size)
        except Exception:
            self.handleError(record)


def _kept(record: logging.LogRecord, object_id: str) -> bool:
    """Whether a record is the object's: not the node's own, unless it is the failure of
    this object's handler."""
    name = record.name
    if name != "service" and not name.startswith("service."):
        return True
    return (
        getattr(record, "action", None) == "handler"
        and getattr(record, "object_id", None) == object_id
    )


class _Installed:
    """The one handler of the process, shared by its nodes (tests run several)."""

    handler: ObjectLogHandler | None = None
    users = 0


def install(level: int) -> None:
    """Put the handler on the root logger (once per process), keeping records at ``level``
    or above; a second node of the process lowers it to its level if need be."""
    if _Installed.handler is None:
        _Installed.handler = ObjectLogHandler(level)
        logging.getLogger().addHandler(_Installed.handler)
    elif level < _Installed.handler.level:
        _Installed.handler.setLevel(level)
    _Installed.users += 1


def uninstall() -> None:
    """Take the handler off once the last node of the process that installed it is done."""
    _Installed.users -= 1
    if _Installed.users <= 0 and _Installed.handler is not None:
        logging.getLogger().removeHandler(_Installed.handler)
        _Installed.handler = None
        _Installed.users = 0


def on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the caller runs on ``loop``'s thread, inside it."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
