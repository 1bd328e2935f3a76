"""Turning a batch of appends and inbox items into the column arrays of one flush."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from service.events import types
from service.events.log import Append, InboxItem
from service.store import notifications, queries


@dataclass
class FlushArrays:
    """Column arrays for every statement of one flush transaction."""

    object_ids: list[str] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)
    last: list[int] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    #: (object_id, seq, type, version, data) per event, in append order (= position order).
    event_rows: list[tuple[str, int, str, int, str]] = field(default_factory=list)
    accepted: tuple[list[str], list[str], list[str], list[bool], list[str | None]] = field(
        default_factory=lambda: ([], [], [], [], [])
    )
    attachments: dict[tuple[str, str], str] = field(default_factory=dict)
    touched: dict[tuple[str, str], None] = field(default_factory=dict)
    closed: tuple[list[str], list[str], list[int], list[str], list[bool]] = field(
        default_factory=lambda: ([], [], [], [], [])
    )
    ended: set[tuple[str, str]] = field(default_factory=set)
    alarms: dict[str, int | None] = field(default_factory=dict)
    snapshots: tuple[list[str], list[int], list[str]] = field(default_factory=lambda: ([], [], []))
    consumed: tuple[list[str], list[int]] = field(default_factory=lambda: ([], []))
    inbox: tuple[list[str], list[str], list[str], list[str]] = field(
        default_factory=lambda: ([], [], [], [])
    )

    @property
    def event_count(self) -> int:
        return len(self.event_rows)

    def arguments(self, node_id: str, channel: str, *, events: bool) -> tuple[Any, ...]:
        """The parameters of queries.FLUSH, in order; without the events if not ``events``
        (the caller sends them by COPY)."""
        columns: tuple[Any, ...] = tuple(zip(*self.event_rows, strict=True)) if events else ()
        if not columns:
            columns = ((), (), (), (), ())
        attached, touched = list(self.attachments), list(self.touched)
        alarmed = [k for k, v in self.alarms.items() if v is not None]
        named = {
            "node_id": node_id,
            "channel": channel,
            "wake": (
                notifications.wake_payload(sorted(set(self.inbox[0]))) if self.inbox[0] else None
            ),
            "object_ids": self.object_ids,
            "expected_seqs": self.expected,
            "last_seqs": self.last,
            "epochs": self.epochs,
            "event_objects": columns[0],
            "event_seqs": columns[1],
            "event_types": columns[2],
            "event_versions": columns[3],
            "event_data": columns[4],
            "accepted_objects": self.accepted[0],
            "accepted_sockets": self.accepted[1],
            "accepted_tags": self.accepted[2],
            "accepted_hibernatables": self.accepted[3],
            "accepted_urls": self.accepted[4],
            "attached_objects": [k[0] for k in attached],
            "attached_sockets": [k[1] for k in attached],
            "attachments": list(self.attachments.values()),
            "touched_objects": [k[0] for k in touched],
            "touched_sockets": [k[1] for k in touched],
            "closed_objects": self.closed[0],
            "closed_sockets": self.closed[1],
            "closed_codes": self.closed[2],
            "closed_reasons": self.closed[3],
            "closed_cleans": self.closed[4],
            "alarm_objects": alarmed,
            "alarm_ms": [self.alarms[k] for k in alarmed],
            "unalarmed_objects": [k for k, v in self.alarms.items() if v is None],
            "snapshot_objects": self.snapshots[0],
            "snapshot_seqs": self.snapshots[1],
            "snapshot_states": self.snapshots[2],
            "consumed_objects": self.consumed[0],
            "consumed_ids": self.consumed[1],
            "inbox_objects": self.inbox[0],
            "inbox_kinds": self.inbox[1],
            "inbox_sockets": self.inbox[2],
            "inbox_data": self.inbox[3],
        }
        return tuple(named[name] for name in queries.FLUSH_PARAMETERS)


def build(groups: dict[str, list[Append]], inbox: list[InboxItem]) -> FlushArrays:
    """Columns for the given appends (grouped by object, in order) and inbox items.

    Raises ValueError if an object's appends do not follow each other seq for seq.
    """
    arrays = FlushArrays()
    for object_id, appends in groups.items():
        first = appends[0]
        seq = first.expected_seq
        for append in appends:
            if append.expected_seq != seq or append.epoch != first.epoch:
                raise ValueError(f"appends of {object_id} do not follow each other")
            for event in append.events:
                seq += 1
                _add_event(arrays, object_id, seq, event)
            if append.snapshot is not None:
                arrays.snapshots[0].append(object_id)
                arrays.snapshots[1].append(append.snapshot[0])
                arrays.snapshots[2].append(append.snapshot[1])
            for inbox_id in append.consumed_inbox:
                arrays.consumed[0].append(object_id)
                arrays.consumed[1].append(inbox_id)
        arrays.object_ids.append(object_id)
        arrays.expected.append(first.expected_seq)
        arrays.last.append(seq)
        arrays.epochs.append(first.epoch)
    for item in inbox:
        arrays.inbox[0].append(item.object_id)
        arrays.inbox[1].append(item.kind)
        arrays.inbox[2].append(item.socket_id)
        arrays.inbox[3].append(json.dumps(item.data, ensure_ascii=False))
    return arrays


def _add_event(arrays: FlushArrays, object_id: str, seq: int, event: types.Event) -> None:
    arrays.event_rows.append((object_id, seq, event.type, event.version, types.to_data(event)))
    _project(arrays, object_id, event)


def _project(arrays: FlushArrays, object_id: str, event: types.Event) -> None:
    """Derive the presence and alarm projections from the event itself.

    Dispatches on the ``type`` tag: isinstance on pydantic models goes through ABCMeta,
    which costs more than the rest of this function on the hot path.
    """
    kind = event.type
    if kind == "message_received":
        arrays.touched[(object_id, event.socket_id)] = None  # type: ignore[union-attr]
    elif kind == "websocket_accepted":
        assert isinstance(event, types.WebSocketAccepted)
        accepted = arrays.accepted
        accepted[0].append(object_id)
        accepted[1].append(event.socket_id)
        accepted[2].append(json.dumps(event.tags, ensure_ascii=False))
        accepted[3].append(event.hibernatable)
        accepted[4].append(event.url)
    elif kind == "attachment_set":
        assert isinstance(event, types.AttachmentSet)
        arrays.attachments[(object_id, event.socket_id)] = json.dumps(
            event.attachment, ensure_ascii=False
        )
    elif kind in ("websocket_closed", "websocket_error"):
        assert isinstance(event, types.WebSocketClosed | types.WebSocketErrored)
        closed = arrays.closed
        # A socket ends once: the first end in the batch stands (durable_flush keeps the
        # first across batches), and one UPDATE must not see two rows for one socket.
        if (object_id, event.socket_id) in arrays.ended:
            return
        arrays.ended.add((object_id, event.socket_id))
        closed[0].append(object_id)
        closed[1].append(event.socket_id)
        closed[2].append(event.code)
        if isinstance(event, types.WebSocketClosed):
            closed[3].append(event.reason)
            closed[4].append(event.was_clean)
        else:
            closed[3].append(event.error)
            closed[4].append(False)
    elif kind == "alarm_set":
        assert isinstance(event, types.AlarmSet)
        arrays.alarms[object_id] = event.scheduled_ms
    elif kind in ("alarm_deleted", "storage_cleared"):
        arrays.alarms[object_id] = None
