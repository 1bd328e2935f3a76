"""Writes an operator makes to the log (implemented by ``service.store.history_store``).

Operator actions are events in the object's own log, like everything else that happens to
it, so the audit trail shows them; this port makes the ones that no live object makes.
"""

from __future__ import annotations

from typing import Protocol

from service.events.types import Event


class OperatorLog(Protocol):
    """The log, as an operator's command writes to it."""

    async def start_object(
        self, object_id: str, binding: str, name: str | None, first: Event
    ) -> None:
        """Make an object whose log begins with ``first``: its catalog row (unless it has one
        without events yet), ``first`` as its event 1, and the projection rows that event
        implies, in one transaction and in position order with every flush.

        ``service.ports.history.ObjectExistsError`` if the object has events already, or
        belongs to another binding.
        """
