"""The diff of two states: what the admin API and ``durable diff`` show, from the fold alone."""

from __future__ import annotations

import copy

from service.events import types
from service.events.fold import ObjectState, apply
from service.history.state_diff import diff
from service.ports.history import FieldChange, KeyChange


def _fold(state: ObjectState, *events: types.Event) -> ObjectState:
    for event in events:
        apply(state, event)
    return state


def test_storage_sockets_and_settings_changes_are_each_named() -> None:
    before = _fold(
        ObjectState(),
        types.WebSocketAccepted(socket_id="a", tags=["user:ann"]),
        types.AttachmentSet(socket_id="a", attachment={"username": "ann"}),
        types.WebSocketAccepted(socket_id="b", tags=["user:bo"]),
        types.StoragePut(entries={"kept": 1, "changed": True, "gone": [1, 2]}),
        types.AlarmSet(scheduled_ms=1_000),
    )
    after = _fold(
        copy.deepcopy(before),
        types.StoragePut(entries={"changed": 1, "new": {"$bytes": "AA=="}}),
        types.StorageDeleted(keys=["gone"]),
        types.AttachmentSet(socket_id="a", attachment={"username": "ann", "away": True}),
        types.WebSocketClosed(socket_id="b", code=1000, was_clean=True),
        types.WebSocketAccepted(socket_id="c", tags=["user:cy"]),
        types.MessageReceived(socket_id="a", text="hi"),
        types.AutoResponseSet(request="ping", response="pong"),
        types.AlarmDeleted(),
    )
    changes = diff(before, after)
    # True and 1 are equal in Python, not in the log: a changed value is a change.
    assert changes.storage == [
        KeyChange("changed", "changed", True, 1),
        KeyChange("gone", "removed", [1, 2], None),
        KeyChange("new", "added", None, {"$bytes": "AA=="}),
    ]
    assert [s.socket_id for s in changes.sockets_opened] == ["c"]
    assert [s.socket_id for s in changes.sockets_closed] == ["b"]
    (changed,) = changes.sockets_changed
    assert changed.socket_id == "a"
    assert (changed.before.attachment, changed.after.attachment) == (
        {"username": "ann"},
        {"username": "ann", "away": True},
    )
    assert changes.fields == [
        FieldChange("auto_response", None, ("ping", "pong")),
        FieldChange("alarm_ms", 1_000, None),
        FieldChange("messages", 0, 1),
    ]
    assert not changes.empty


def test_the_same_state_has_no_change_and_the_reverse_swaps_sides() -> None:
    state = _fold(ObjectState(), types.StoragePut(entries={"k": "v"}))
    assert diff(state, copy.deepcopy(state)).empty
    empty = ObjectState()
    assert diff(empty, state).storage == [KeyChange("k", "added", None, "v")]
    assert diff(state, empty).storage == [KeyChange("k", "removed", "v", None)]
