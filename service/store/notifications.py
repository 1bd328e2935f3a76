"""NOTIFY payloads: a hint carrying ids and positions only, parsed into a discriminated union.

Each node listens on a channel of its own (``channel_of``); a flush that writes inbox or
outbox rows notifies each destination node once, naming the objects woken there and the
newest outbox position written for it (``durable_route_v3`` and ``durable_wake_v1`` build
the same payloads in SQL).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

#: PostgreSQL refuses payloads of 8000 bytes or more; stay well below.
MAX_PAYLOAD = 7000


class Wake(BaseModel):
    """These objects have new inbox rows; this node's outbox has rows up to ``position``."""

    kind: Literal["wake"] = "wake"
    object_ids: list[str]
    #: The newest outbox row the flush wrote for this node, if it wrote any.
    position: int | None = None


class WakeAll(BaseModel):
    """Too many objects to name: every listener should poll the inbox."""

    kind: Literal["wake_all"] = "wake_all"
    position: int | None = None


Notification = Annotated[Wake | WakeAll, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Notification] = TypeAdapter(Notification)


def channel_of(node_id: str) -> str:
    """The channel a node listens on for wakes of its objects: ``durable_channel_v1`` of
    migration a15b3d0f7906, the same name whatever the id's length (channels are at most 63
    bytes)."""
    return "durable_v1_" + hashlib.md5(node_id.encode(), usedforsecurity=False).hexdigest()


def wake_payload(object_ids: list[str]) -> str:
    """The payload for a flush that added inbox rows for these objects."""
    payload = Wake(object_ids=object_ids).model_dump_json()
    if len(payload) > MAX_PAYLOAD:
        return WakeAll().model_dump_json()
    return payload


def parse(payload: str) -> Notification:
    """Parse a payload; raises pydantic.ValidationError on anything else."""
    return _ADAPTER.validate_json(payload)
