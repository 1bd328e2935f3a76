"""Pages of events as front ends show them (``durable events`` and ``tail``, the admin API):
each event named by its object's label and by who sent it, learnt as the pages go."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from service.history import json_shapes, readable
from service.ports.history import HistoryService, LoggedEvent

T = TypeVar("T")


class EventReader:
    """Follows pages of events in order, learning who each socket is as it goes (from the
    events, and from the presence rows of sockets it meets without their accept)."""

    def __init__(self, history: HistoryService) -> None:
        self._history = history
        self._senders: dict[str, readable.Senders] = {}
        self._labels: dict[str, str] = {}

    def name(self, object_id: str, label: str) -> None:
        """Name an object already found (one object's events know it before the first page)."""
        self._labels[object_id] = label

    async def render(
        self, events: list[LoggedEvent], each: Callable[[LoggedEvent, str, readable.Senders], T]
    ) -> list[T]:
        """``each(event, its object's label, the senders just past it)`` for every event of a
        page, in order (the senders go on changing: ``each`` reads them at once)."""
        await self._prepare(events)
        rendered = []
        for logged in events:
            senders = self._senders[logged.object_id]
            senders.observe(logged.event)
            rendered.append(each(logged, self._labels[logged.object_id], senders))
        return rendered

    async def shapes(self, events: list[LoggedEvent]) -> list[dict[str, Any]]:
        """The JSON shapes of a page of events (``json_shapes.event``), in order."""
        return await self.render(events, json_shapes.event)

    async def _prepare(self, events: list[LoggedEvent]) -> None:
        """Catalog names of objects met for the first time; presence rows of sockets whose
        accept came before what was read."""
        by_object: dict[str, list[LoggedEvent]] = {}
        for logged in events:
            by_object.setdefault(logged.object_id, []).append(logged)
        for object_id, own in by_object.items():
            if object_id not in self._labels:
                self._labels[object_id] = json_shapes.label_of(await self._history.find(object_id))
            senders = self._senders.setdefault(object_id, readable.Senders())
            missing = senders.unknown(own)
            if missing:
                senders.learn(await self._history.sockets(object_id, missing), missing)
