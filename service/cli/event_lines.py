"""Events as the history commands print them (``events``, ``tail``): a line each, naming
the object and who sent what, or the JSON shape of each."""

from __future__ import annotations

from service.history import json_shapes, readable
from service.ports.history import HistoryService, LoggedEvent

#: Events read per query by the commands that print events.
PAGE = 1000


class EventPrinter:
    """Renders pages of events in order, learning who each socket is as it goes (from the
    events, and from the presence rows of sockets it meets without their accept)."""

    def __init__(self, history: HistoryService, *, as_json: bool, with_object: bool) -> None:
        self._history = history
        self._as_json = as_json
        self._with_object = with_object
        self._senders: dict[str, readable.Senders] = {}
        self._labels: dict[str, str] = {}

    def name(self, object_id: str, label: str) -> None:
        """Name an object already found (``events`` knows its object before the first page)."""
        self._labels[object_id] = label

    async def render(self, events: list[LoggedEvent]) -> list[str]:
        """The lines (text or JSON) of a page of events, in order."""
        await self._prepare(events)
        rendered = []
        for logged in events:
            senders = self._senders[logged.object_id]
            senders.observe(logged.event)
            label = self._labels[logged.object_id]
            if self._as_json:
                rendered.append(json_shapes.dumps(json_shapes.event(logged, label, senders)))
            else:
                rendered.append(self._line(logged, label, senders))
        return rendered

    def _line(self, logged: LoggedEvent, label: str, senders: readable.Senders) -> str:
        who = senders.name(readable.socket_of(logged.event))
        said = readable.describe(logged.event)
        text = f"{who}: {said}" if who is not None else said
        where = f"{logged.position}  " if self._with_object else ""
        seq = f"{label} #{logged.seq}" if self._with_object else f"{logged.seq:>6}"
        return f"{where}{seq}  {logged.recorded_at.isoformat()}  {logged.event.type}  {text}"

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
