"""What a rerun found, as plain records, and how it reads: as text for people, as JSON."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from service.events.types import Event
from service.history import readable
from service.ports.history import LoggedEvent, ObjectInfo, UnknownEvent
from service.rerun.scratch import Sent


class RerunError(Exception):
    """The rerun cannot start as asked; the message says why and what to ask instead."""


def known(event: Event | UnknownEvent) -> Event:
    """``event``, if this version of the service knows its type; a rerun cannot run or
    compare one it does not (a newer node wrote it)."""
    if isinstance(event, UnknownEvent):
        raise RerunError(
            f"the log holds an event of type {event.type!r} (version {event.version}) that this "
            "version of the service does not know: rerun with the version that wrote it"
        )
    return event


#: Inbound event types: those that start their turn, and those that end it (a close or an
#: error is recorded after its handler ran, as the socket stays listed while it runs).
STARTS_TURN = frozenset({"message_received", "request_received", "alarm_fired", "rpc_called"})
ENDS_TURN = frozenset({"websocket_closed", "websocket_error"})
#: Events no handler writes, after which the object was constructed again: a fork's first
#: event (written by the operator) and a restore (appended by a wake, or by an operator's
#: turn, after which the object was reset). A rerun takes them as given, as inbound events
#: are: it folds them in and runs the constructor, as the wake did.
WAKES = frozenset({"object_forked", "storage_restored"})
#: Events an operator wrote in turns of their own, which no handler writes and no wake
#: follows: a socket closed, a frame sent. A rerun takes them as given too: it folds them
#: in (the socket is closing from then on, as it was live) and goes on.
GIVEN = frozenset({"operator_close_sent", "operator_message_sent"})
INBOUND = STARTS_TURN | ENDS_TURN | WAKES | GIVEN

#: Events shown per side in the text report (the JSON has them all).
_SHOWN = 12


@dataclass(slots=True)
class Divergence:
    """The first turn whose rerun did not record what the log did."""

    #: The inbound event of the turn; None for the constructor run at the start.
    inbound: LoggedEvent | None
    #: The turn's events in the log, as far as they could be told apart from the next.
    recorded: list[LoggedEvent]
    #: The turn's events in the rerun (paired ids shown as the log's).
    rerun: list[Event]
    #: The seq of the turn's first event in the log.
    first_seq: int
    #: Where in the turn the two first differ (0: its first event).
    index: int
    #: What differs, in words.
    reason: str
    #: Frames and closes the rerun made in the turn (sends are not in the log).
    sent: list[Sent] = field(default_factory=list)
    #: The status of the rerun's response to a request.
    status: int | None = None


@dataclass(slots=True)
class Report:
    """The outcome of rerunning one object's inbound events from ``start`` to ``end``."""

    object: ObjectInfo
    #: The range asked for (seqs of the log, both inclusive).
    start: int
    end: int
    #: Inbound events whose turns agreed.
    agreed: int = 0
    #: The seqs of the first and last inbound events rerun (0: none).
    first_inbound: int = 0
    last_inbound: int = 0
    divergence: Divergence | None = None
    #: Things that bear on the outcome (background work skipped, calls refused, ...).
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        info = self.object
        return f"{info.binding}/{info.name}" if info.name is not None else info.object_id


def describe(event: Event, limit: int = 72) -> str:
    """One line for an event: its type, then its fields (values cut at ``limit``)."""
    parts = [
        f"{name}={_cut(json.dumps(value, ensure_ascii=False), limit)}"
        for name, value in readable.fields_of(event).items()
        if value is not None
    ]
    return " ".join([event.type, *parts])


def _cut(text: str, limit: int = 72) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sent_text(sent: Sent) -> str:
    if sent.kind == "close":
        return f"close {sent.socket_id} code={sent.code} reason={json.dumps(sent.reason)}"
    data = sent.data
    shown = (
        json.dumps(data, ensure_ascii=False)
        if isinstance(data, str)
        else f"<{len(data or b'')} bytes>"
    )
    return f"send  {sent.socket_id} {_cut(shown, 96)}"


def render(report: Report) -> str:
    """The report as people read it."""
    span = f"seq {report.first_inbound:,}..{report.last_inbound:,}"
    divergence = report.divergence
    lines: list[str] = []
    if divergence is None:
        if report.agreed:
            lines.append(
                f"{report.label}: no divergence in {report.agreed:,} inbound events ({span})"
            )
        else:
            lines.append(
                f"{report.label}: no inbound events in seq {report.start:,}..{report.end:,}"
            )
    else:
        inbound = divergence.inbound
        where = (
            f"inbound event seq {inbound.seq:,} ({inbound.event.type})"
            if inbound is not None
            else f"the constructor (run on the state after seq {divergence.first_seq - 1:,})"
        )
        lines.append(
            f"{report.label}: first divergence at {where}, after {report.agreed:,} inbound "
            "events that agree"
        )
        lines.append("")
        if inbound is not None:
            lines.append(f"  inbound  seq {inbound.seq:<6} {describe(known(inbound.event))}")
        lines.append(f"  differs  {divergence.reason}")
        lines.append("")
        lines.append("  recorded in the log:")
        lines.extend(_events(divergence, [(e.seq, known(e.event)) for e in divergence.recorded]))
        lines.append("  recorded by the rerun:")
        numbered = [(divergence.first_seq + i, e) for i, e in enumerate(divergence.rerun)]
        lines.extend(_events(divergence, numbered))
        if divergence.status is not None:
            lines.append(f"  the rerun's response: status {divergence.status}")
        if divergence.sent:
            lines.append("  sent by the rerun (sends are not in the log; for context):")
            lines.extend(f"    {_sent_text(s)}" for s in divergence.sent[:_SHOWN])
            if len(divergence.sent) > _SHOWN:
                lines.append(f"    … {len(divergence.sent) - _SHOWN} more")
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)


def _events(divergence: Divergence, numbered: list[tuple[int, Event]]) -> list[str]:
    if not numbered:
        return ["    (nothing)"]
    marked = divergence.first_seq + divergence.index
    # The events that differ are shown at more length: the difference may lie further in.
    lines = [
        f"  > seq {seq:<6} {describe(event, 240)}"
        if seq == marked
        else f"    seq {seq:<6} {describe(event)}"
        for seq, event in numbered[:_SHOWN]
    ]
    if len(numbered) > _SHOWN:
        lines.append(f"    … {len(numbered) - _SHOWN} more")
    return lines


def to_json(report: Report) -> dict[str, Any]:
    """The report as one JSON object (``durable rerun --json``)."""
    info = report.object
    divergence = report.divergence
    return {
        "object": {"object_id": info.object_id, "binding": info.binding, "name": info.name},
        "from": report.start,
        "to": report.end,
        "inbound_events_agreed": report.agreed,
        "first_inbound_seq": report.first_inbound or None,
        "last_inbound_seq": report.last_inbound or None,
        "diverged": divergence is not None,
        "divergence": None if divergence is None else _divergence_json(divergence),
        "notes": report.notes,
        "seconds": round(report.seconds, 3),
    }


def _divergence_json(divergence: Divergence) -> dict[str, Any]:
    inbound = divergence.inbound
    return {
        "inbound": None if inbound is None else _logged_json(inbound),
        "at_seq": divergence.first_seq + divergence.index,
        "reason": divergence.reason,
        "recorded": [_logged_json(e) for e in divergence.recorded],
        "rerun": [_event_json(divergence.first_seq + i, e) for i, e in enumerate(divergence.rerun)],
        "sent": [_sent_json(s) for s in divergence.sent],
        "response_status": divergence.status,
    }


def _logged_json(logged: LoggedEvent) -> dict[str, Any]:
    shown = _event_json(logged.seq, known(logged.event))
    shown["recorded_at"] = logged.recorded_at.isoformat()
    return shown


def _event_json(seq: int, event: Event) -> dict[str, Any]:
    return {"seq": seq, "type": event.type, "data": readable.fields_of(event)}


def _sent_json(sent: Sent) -> dict[str, Any]:
    if sent.kind == "close":
        return {
            "kind": "close",
            "socket_id": sent.socket_id,
            "code": sent.code,
            "reason": sent.reason,
        }
    if isinstance(sent.data, bytes):
        binary = base64.b64encode(sent.data).decode("ascii")
        return {"kind": "send", "socket_id": sent.socket_id, "binary": binary}
    return {"kind": "send", "socket_id": sent.socket_id, "text": sent.data}
