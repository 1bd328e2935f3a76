"""Events as the history commands print them (``events``, ``tail``): a line each, naming
the object and who sent what, or the JSON shape of each."""

from __future__ import annotations

from service.history import json_shapes, readable
from service.history.event_pages import EventReader
from service.ports.history import HistoryService, LoggedEvent

#: Events read per query by the commands that print events.
PAGE = 1000


class EventPrinter:
    """Renders pages of events in order, learning who each socket is as it goes."""

    def __init__(self, history: HistoryService, *, as_json: bool, with_object: bool) -> None:
        self._reader = EventReader(history)
        self._as_json = as_json
        self._with_object = with_object

    def name(self, object_id: str, label: str) -> None:
        """Name an object already found (``events`` knows its object before the first page)."""
        self._reader.name(object_id, label)

    async def render(self, events: list[LoggedEvent]) -> list[str]:
        """The lines (text or JSON) of a page of events, in order."""
        return await self._reader.render(events, self._line)

    def _line(self, logged: LoggedEvent, label: str, senders: readable.Senders) -> str:
        if self._as_json:
            return json_shapes.dumps(json_shapes.event(logged, label, senders))
        who = senders.name(readable.socket_of(logged.event))
        said = readable.describe(logged.event)
        text = f"{who}: {said}" if who is not None else said
        where = f"{logged.position}  " if self._with_object else ""
        seq = f"{label} #{logged.seq}" if self._with_object else f"{logged.seq:>6}"
        return f"{where}{seq}  {logged.recorded_at.isoformat()}  {logged.event.type}  {text}"
