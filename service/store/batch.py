"""Turning a batch of appends and inbox items into the records of one flush."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from service.events import types
from service.ports.records import Append, InboxItem, RemoteOutput
from service.store import flush_records


@dataclass(slots=True)
class FlushBatch:
    """The rows of one flush transaction, by kind, as the appends produce them."""

    advances: list[flush_records.AdvanceRow] = field(default_factory=list)
    #: In append order (= position order).
    events: list[flush_records.EventRow] = field(default_factory=list)
    accepted: list[flush_records.AcceptedRow] = field(default_factory=list)
    #: The last attachment (JSON text) of each (object_id, socket_id).
    attachments: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Sockets that received a message, each once (an ordered set).
    touched: dict[flush_records.TouchedRow, None] = field(default_factory=dict)
    closed: list[flush_records.ClosedRow] = field(default_factory=list)
    #: (object_id, socket_id) of the sockets in ``closed``.
    ended: set[tuple[str, str]] = field(default_factory=set)
    #: Each object's alarm as the flush leaves it (epoch ms), None if deleted.
    alarms: dict[str, int | None] = field(default_factory=dict)
    snapshots: list[flush_records.SnapshotRow] = field(default_factory=list)
    consumed: list[flush_records.ConsumedRow] = field(default_factory=list)
    inbox: list[flush_records.InboxRow] = field(default_factory=list)
    #: Objects that get new inbox rows: the flush wakes their owners (queries.FLUSH_AND_ROUTE).
    woken: set[str] = field(default_factory=set)
    #: Output for sockets other nodes hold, in turn order (queries.FLUSH_AND_ROUTE).
    outbox: list[flush_records.OutboxRow] = field(default_factory=list)
    #: Lines the turns logged, each turn's in order (durable_logs_v1).
    logs: list[flush_records.LogRow] = field(default_factory=list)

    @property
    def routes(self) -> bool:
        """Whether the flush wakes other nodes' objects or writes to their outbox."""
        return bool(self.woken or self.outbox)

    @property
    def event_count(self) -> int:
        return len(self.events)

    def arguments(self, node_id: str, channel: str, *, events: bool) -> flush_records.Arguments:
        """The parameters of durable_flush_v1; without the events if not ``events`` (the
        caller sends them by COPY)."""
        return flush_records.Arguments(
            node_id=node_id,
            channel=channel,
            # No NOTIFY on the shared channel: the wakes go to each node (FLUSH_AND_ROUTE).
            wake=None,
            advances=self.advances,
            new_events=self.events if events else [],
            accepted_sockets=self.accepted,
            attachments=[
                flush_records.attachment(object_id, socket_id, attachment)
                for (object_id, socket_id), attachment in self.attachments.items()
            ],
            touched_sockets=list(self.touched),
            closed_sockets=self.closed,
            alarm_changes=[flush_records.alarm(o, ms) for o, ms in self.alarms.items()],
            new_snapshots=self.snapshots,
            consumed_inbox=self.consumed,
            new_inbox=self.inbox,
        )


def build(groups: dict[str, list[Append]], inbox: list[InboxItem]) -> FlushBatch:
    """The rows of the given appends (grouped by object, in order) and inbox items.

    Raises ValueError if an object's appends do not follow each other seq for seq.
    """
    batch = FlushBatch()
    for object_id, appends in groups.items():
        first = appends[0]
        seq = first.expected_seq
        for append in appends:
            if append.expected_seq != seq or append.epoch != first.epoch:
                raise ValueError(f"appends of {object_id} do not follow each other")
            for event in append.events:
                seq += 1
                _add_event(batch, object_id, seq, event)
            if append.snapshot is not None:
                snapshot_seq, state = append.snapshot
                batch.snapshots.append(flush_records.snapshot(object_id, snapshot_seq, state))
            for inbox_id in append.consumed_inbox:
                batch.consumed.append(flush_records.consumed(object_id, inbox_id))
            for output in append.outbox:
                batch.outbox.append(_outbox_row(object_id, output))
            # The turn's seq: where its append ends (the seq it was at, if it has no event).
            for number, logged in enumerate(append.logs, start=1):
                batch.logs.append(
                    flush_records.log_line(
                        object_id,
                        seq,
                        number,
                        logged.at,
                        logged.level,
                        logged.logger,
                        logged.message,
                    )
                )
        batch.advances.append(
            flush_records.advance(object_id, first.expected_seq, seq, first.epoch)
        )
    for item in inbox:
        data = json.dumps(item.data, ensure_ascii=False)
        batch.inbox.append(flush_records.inbox(item.object_id, item.kind, item.socket_id, data))
        batch.woken.add(item.object_id)
    return batch


def _outbox_row(object_id: str, output: RemoteOutput) -> flush_records.OutboxRow:
    reply = output.reply
    return flush_records.outbox(
        output.node,
        object_id,
        output.socket_id,
        output.kind,
        output.text,
        output.data,
        output.code,
        output.reason,
        output.request_id,
        None if reply is None else json.dumps(reply, ensure_ascii=False),
    )


def _add_event(batch: FlushBatch, object_id: str, seq: int, event: types.Event) -> None:
    batch.events.append(
        flush_records.event(object_id, seq, event.type, event.version, types.to_data(event))
    )
    _project(batch, object_id, event)


def _project(batch: FlushBatch, object_id: str, event: types.Event) -> None:
    """Derive the presence and alarm projections from the event itself.

    Dispatches on the ``type`` tag: isinstance on pydantic models goes through ABCMeta,
    which costs more than the rest of this function on the hot path.
    """
    kind = event.type
    if kind == "message_received":
        batch.touched[flush_records.touched(object_id, event.socket_id)] = None  # type: ignore[union-attr]
    elif kind == "websocket_accepted":
        assert isinstance(event, types.WebSocketAccepted)
        batch.accepted.append(
            flush_records.accepted(
                object_id, event.socket_id, event.tags, event.hibernatable, event.url
            )
        )
    elif kind == "attachment_set":
        assert isinstance(event, types.AttachmentSet)
        batch.attachments[(object_id, event.socket_id)] = json.dumps(
            event.attachment, ensure_ascii=False
        )
    elif kind in ("websocket_closed", "websocket_error"):
        assert isinstance(event, types.WebSocketClosed | types.WebSocketErrored)
        # A socket ends once: the first end in the batch stands (durable_flush_v1 keeps
        # the first across batches), and one UPDATE must not see two rows for one socket.
        if (object_id, event.socket_id) in batch.ended:
            return
        batch.ended.add((object_id, event.socket_id))
        if isinstance(event, types.WebSocketClosed):
            reason, was_clean = event.reason, event.was_clean
        else:
            reason, was_clean = event.error, False
        batch.closed.append(
            flush_records.closed(object_id, event.socket_id, event.code, reason, was_clean)
        )
    elif kind == "alarm_set":
        assert isinstance(event, types.AlarmSet)
        batch.alarms[object_id] = event.scheduled_ms
    elif kind in ("alarm_deleted", "storage_cleared"):
        batch.alarms[object_id] = None
    elif kind in ("storage_restored", "object_forked"):
        # Both set the whole database, the alarm included (see their event types).
        assert isinstance(event, types.StorageRestored | types.ObjectForked)
        batch.alarms[object_id] = event.alarm_ms
