"""Alarm timers: one per object, at-least-once, retried with backoff when the handler fails."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Protocol

from service.ports.event_log import EventLog

log = logging.getLogger(__name__)

#: Retries that count against the limit before an alarm is abandoned (workerd's figure).
MAX_RETRIES = 6


class AlarmTarget(Protocol):
    """Where a due alarm goes (the node), and how its log lines name the object."""

    def deliver_alarm(self, object_id: str) -> None: ...

    def log_extra(self, object_id: str) -> dict[str, str]: ...


class AlarmScheduler:
    """Timers for alarms due soon; the ``alarms`` table is the durable record of the rest."""

    def __init__(self, target: AlarmTarget, event_log: EventLog) -> None:
        self._target = target
        self._event_log = event_log
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._retries: dict[str, int] = {}

    def schedule(self, object_id: str, scheduled_ms: int | None) -> None:
        """(Re)arm the timer of an object, or disarm it when ``scheduled_ms`` is None."""
        timer = self._timers.pop(object_id, None)
        if timer is not None:
            timer.cancel()
        if scheduled_ms is None:
            return
        delay = max(0.0, scheduled_ms / 1000 - time.time())
        loop = asyncio.get_running_loop()
        self._timers[object_id] = loop.call_later(delay, self._fire, object_id)

    def _fire(self, object_id: str) -> None:
        self._timers.pop(object_id, None)
        self._target.deliver_alarm(object_id)

    def due(self, scheduled_ms: int, now_ms: int) -> bool:
        """Whether an alarm set for ``scheduled_ms`` should run now (a timer may fire a few
        milliseconds early)."""
        return scheduled_ms <= now_ms + 5

    def retry_count(self, object_id: str) -> int:
        return self._retries.get(object_id, 0)

    def succeeded(self, object_id: str) -> None:
        self._retries.pop(object_id, None)

    def failed(self, object_id: str) -> float | None:
        """Count a failure; the delay before the retry, or None once retries are used up."""
        count = self._retries.get(object_id, 0)
        if count >= MAX_RETRIES:
            self._retries.pop(object_id, None)
            log.error(
                "alarm abandoned after %d retries", count, extra=self._target.log_extra(object_id)
            )
            return None
        self._retries[object_id] = count + 1
        return float(2 << count) * (1 + random.uniform(0, 0.25))

    async def poll(self, horizon_seconds: float) -> None:
        """Arm timers for alarms due within the horizon (after a restart, or a wake)."""
        for object_id, scheduled_ms in await self._event_log.due_alarms(horizon_seconds):
            if object_id not in self._timers:
                self.schedule(object_id, scheduled_ms)

    def armed(self) -> list[str]:
        """The objects whose alarms are due soon (their timers are set)."""
        return list(self._timers)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
