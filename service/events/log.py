"""Kept only for ``service/store/batch.py``, whose owner is changing it now: the records it
imports live in ``service.ports.records``. Delete this module once batch.py imports them
from there."""

from __future__ import annotations

from service.ports.records import Append, InboxItem

__all__ = ["Append", "InboxItem"]
