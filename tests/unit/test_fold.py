"""The fold: ``apply`` for every event type, ``undo_of``, snapshots, and the row codec."""

from __future__ import annotations

import copy
import json
import random
import typing

import pytest

from service.events import bookmarks, snapshot, types, values
from service.events.fold import ObjectState, SocketState, apply, undo_of


def fold(*events: types.Event, state: ObjectState | None = None) -> ObjectState:
    state = state if state is not None else ObjectState()
    for event in events:
        apply(state, event)
    return state


def full_picture(state: ObjectState) -> dict[str, typing.Any]:
    """Everything in the state, including the tag index and the order of every collection."""
    return {
        "comparable": snapshot.comparable(state),
        "storage_order": list(state.storage),
        "socket_order": list(state.sockets),
        "tag_index": {tag: list(ids) for tag, ids in state.tag_index.items()},
    }


def accepted(socket_id: str, *tags: str, hibernatable: bool = True) -> types.WebSocketAccepted:
    return types.WebSocketAccepted(
        socket_id=socket_id, tags=list(tags), hibernatable=hibernatable, url=f"http://x/{socket_id}"
    )


def rich_state() -> ObjectState:
    return fold(
        accepted("s1", "room", "user:a"),
        accepted("s2", "room"),
        accepted("s3", "user:c", hibernatable=True),
        accepted("std", hibernatable=False),
        types.AttachmentSet(socket_id="s2", attachment=values.encode({"n": b"\x01"})),
        types.StoragePut(entries={"b": 2, "a": values.encode("x\x00"), "c": [1]}),
        types.AutoResponseSet(request="ping", response="pong"),
        types.EventTimeoutSet(ms=5000),
        types.AlarmSet(scheduled_ms=1_700_000_000_000),
        types.MessageReceived(socket_id="s1", text="hi"),
    )


# -- apply, one event type at a time -----------------------------------------------------


def test_new_state_is_empty():
    state = ObjectState()
    assert state.seq == 0
    assert not state.storage and not state.sockets and not state.tag_index
    assert state.auto_response is None
    assert state.event_timeout_ms is None and state.alarm_ms is None
    assert state.messages == 0


def test_apply_returns_the_state_and_counts_seq():
    state = ObjectState()
    assert apply(state, types.AlarmDeleted()) is state
    assert state.seq == 1
    apply(state, types.StorageCleared())
    assert state.seq == 2


def test_websocket_accepted():
    state = fold(accepted("s1", "a", "b"), accepted("s2", "b"))
    socket = state.sockets["s1"]
    assert socket == SocketState(
        socket_id="s1", tags=("a", "b"), hibernatable=True, url="http://x/s1"
    )
    assert socket.attachment is None and not socket.close_sent
    assert list(state.sockets) == ["s1", "s2"]
    assert {tag: list(ids) for tag, ids in state.tag_index.items()} == {
        "a": ["s1"],
        "b": ["s1", "s2"],
    }


def test_standard_socket_is_kept_as_not_hibernatable():
    state = fold(accepted("s", hibernatable=False))
    assert state.sockets["s"].hibernatable is False
    assert state.tag_index == {}


def test_attachment_set_and_replaced():
    state = fold(accepted("s"), types.AttachmentSet(socket_id="s", attachment={"a": 1}))
    assert state.sockets["s"].attachment == {"a": 1}
    apply(state, types.AttachmentSet(socket_id="s", attachment=None))
    assert state.sockets["s"].attachment is None


def test_attachment_of_unknown_socket_is_ignored():
    state = fold(types.AttachmentSet(socket_id="gone", attachment=1))
    assert state.sockets == {} and state.seq == 1


def test_close_sent_marks_the_socket_but_keeps_it_listed():
    state = fold(accepted("s", "t"), types.CloseSent(socket_id="s", code=1000, reason="bye"))
    assert state.sockets["s"].close_sent is True
    assert list(state.tag_index["t"]) == ["s"]
    fold(types.CloseSent(socket_id="unknown"), state=state)
    assert state.seq == 3


@pytest.mark.parametrize(
    "ending",
    [
        types.WebSocketClosed(socket_id="s1", code=1000, reason="", was_clean=True),
        types.WebSocketErrored(socket_id="s1", error="boom", code=1009),
    ],
    ids=["closed", "errored"],
)
def test_socket_end_removes_socket_and_its_tags(ending):
    state = fold(accepted("s1", "only", "shared"), accepted("s2", "shared"), ending)
    assert list(state.sockets) == ["s2"]
    assert {tag: list(ids) for tag, ids in state.tag_index.items()} == {"shared": ["s2"]}
    apply(state, ending)  # a second end of the same socket changes nothing but seq
    assert list(state.sockets) == ["s2"]


def test_message_received_counts():
    state = fold(
        accepted("s"),
        types.MessageReceived(socket_id="s", text="a"),
        types.MessageReceived(socket_id="s", binary="AA=="),
    )
    assert state.messages == 2


def test_message_published_changes_nothing_but_seq():
    state = rich_state()
    before = snapshot.comparable(state)
    apply(state, types.MessagePublished(tag="room", data={"text": "hi"}))
    apply(state, types.MessagePublished(binary="AA=="))
    assert snapshot.comparable(state) == {**before, "seq": before["seq"] + 2}


def test_storage_put_deleted_cleared():
    state = fold(types.StoragePut(entries={"b": 1, "a": 2}))
    assert list(state.storage.items()) == [("a", 2), ("b", 1)]
    apply(state, types.StoragePut(entries={"a": 3, "c": None}))
    assert dict(state.storage) == {"a": 3, "b": 1, "c": None}
    apply(state, types.StorageDeleted(keys=["a", "missing"]))
    assert dict(state.storage) == {"b": 1, "c": None}
    apply(state, types.AlarmSet(scheduled_ms=5))
    apply(state, types.StorageCleared())
    assert dict(state.storage) == {}
    assert state.alarm_ms is None


def test_storage_is_sorted_by_code_point_which_is_utf8_order():
    keys = ["b", "a", "é", "z", "\U0001f600", "\uffff", "A", ""]
    state = fold(types.StoragePut(entries=dict.fromkeys(keys, 1)))
    assert list(state.storage) == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_auto_response_set_and_cleared():
    state = fold(types.AutoResponseSet(request="ping", response="pong"))
    assert state.auto_response == ("ping", "pong")
    apply(state, types.AutoResponseSet())
    assert state.auto_response is None


def test_event_timeout_set_and_cleared():
    state = fold(types.EventTimeoutSet(ms=1000))
    assert state.event_timeout_ms == 1000
    apply(state, types.EventTimeoutSet())
    assert state.event_timeout_ms is None


def test_alarm_set_replaced_deleted():
    state = fold(types.AlarmSet(scheduled_ms=10), types.AlarmSet(scheduled_ms=20))
    assert state.alarm_ms == 20
    apply(state, types.AlarmDeleted())
    assert state.alarm_ms is None


def test_restore_requested_is_pending_until_storage_restored():
    state = fold(types.StoragePut(entries={"a": 1}), types.AlarmSet(scheduled_ms=5))
    request = types.RestoreRequested(bookmark=bookmarks.of_seq(1), undo_bookmark="x" * 20)
    apply(state, request)
    assert state.pending_restore == bookmarks.of_seq(1)
    assert dict(state.storage) == {"a": 1} and state.alarm_ms == 5  # nothing restored yet
    apply(state, types.RestoreRequested(bookmark=bookmarks.of_seq(0), undo_bookmark="y"))
    assert state.pending_restore == bookmarks.of_seq(0)  # the later request wins
    apply(state, types.AutoResponseSet(request="p", response="q"))
    apply(
        state,
        types.StorageRestored(
            bookmark=bookmarks.of_seq(0), from_seq=0, storage={"b": 2, "a": 3}, alarm_ms=None
        ),
    )
    assert list(state.storage.items()) == [("a", 3), ("b", 2)]
    assert state.alarm_ms is None and state.pending_restore is None
    # Not storage: the auto-response stays as it was.
    assert state.auto_response == ("p", "q") and state.seq == 6


def test_rpc_calls_change_nothing_but_seq():
    state = rich_state()
    seq = state.seq
    apply(state, types.RpcCalled(call_id="c" * 32, method="count", args=[1]))
    apply(state, types.RpcReturned(call_id="c" * 32, result=2))
    assert state.seq == seq + 2
    state.seq = seq
    assert full_picture(state) == full_picture(rich_state())


def test_object_forked_starts_with_the_copied_state():
    state = fold(forked())
    assert state.seq == 1
    assert list(state.storage) == ["a", "z"]
    assert values.decode(state.storage["a"]) == b"\x00"
    assert state.auto_response == ("hi", "there")
    assert (state.event_timeout_ms, state.alarm_ms) == (250, 99)
    assert state.sockets == {} and state.messages == 0 and state.pending_restore is None


# -- undo_of -------------------------------------------------------------------------------


def one_of_each(state: ObjectState) -> list[types.Event]:
    """One event of every type that makes sense against ``rich_state()``."""
    return [
        accepted("new", "room", "fresh"),
        types.AttachmentSet(socket_id="s2", attachment="replaced"),
        types.AttachmentSet(socket_id="s1", attachment={"first": True}),
        types.CloseSent(socket_id="s1", code=4000, reason="bye"),
        types.WebSocketClosed(socket_id="s1", code=1000, was_clean=True),
        types.WebSocketClosed(socket_id="s2", code=1006, was_clean=False),
        types.WebSocketErrored(socket_id="s3", error="too big", code=1009),
        types.WebSocketClosed(socket_id="unknown", code=1000, was_clean=True),
        types.MessageReceived(socket_id="s1", text="hello"),
        types.RequestReceived(method="GET", url="http://x/r", headers={"Upgrade": "websocket"}),
        types.AlarmFired(retry_count=1, is_retry=True),
        types.MessagePublished(tag="room", data={"text": "hi"}),
        types.StoragePut(entries={"a": "new", "zz": 1, "b": None}),
        types.StorageDeleted(keys=["a", "c", "missing"]),
        types.StorageCleared(),
        types.AutoResponseSet(request="p", response="q"),
        types.AutoResponseSet(),
        types.EventTimeoutSet(ms=1),
        types.EventTimeoutSet(),
        types.AlarmSet(scheduled_ms=42),
        types.AlarmDeleted(),
        types.RestoreRequested(bookmark=bookmarks.of_seq(3), undo_bookmark=bookmarks.of_seq(10)),
        types.StorageRestored(
            bookmark=bookmarks.of_seq(6), from_seq=6, storage={"b": 2, "old": 1}, alarm_ms=None
        ),
        types.StorageRestored(
            bookmark=bookmarks.of_seq(0), from_seq=0, storage={}, alarm_ms=7, by="grace"
        ),
        types.OperatorCloseSent(socket_id="s2", code=4000, reason="spam", by="grace"),
        types.OperatorCloseSent(socket_id="unknown", code=1000, by="grace"),
        types.OperatorMessageSent(socket_id="s1", text="notice", by="grace"),
        forked(),
        types.RpcCalled(
            call_id="c" * 32,
            method="join",
            args=["ada", values.encode(b"\x01")],
            kwargs={"seat": 2},
            caller="a" * 64,
            caller_label="LOBBY/main",
        ),
        types.RpcReturned(call_id="c" * 32, result={"seats": 3}),
        types.RpcReturned(call_id="d" * 32, error_type="ValueError", error_message="full"),
    ]


def forked(**fields: typing.Any) -> types.ObjectForked:
    return types.ObjectForked(
        source_object_id="a" * 64,
        source_binding="ROOM",
        source_name="lobby",
        source_seq=7,
        by="ops@host",
        storage=fields.pop("storage", {"z": 1, "a": values.encode(b"\x00")}),
        auto_response=("hi", "there"),
        event_timeout_ms=250,
        alarm_ms=99,
        **fields,
    )


@pytest.mark.parametrize("index", range(len(one_of_each(ObjectState()))))
def test_undo_restores_exactly(index):
    state = rich_state()
    event = one_of_each(state)[index]
    before = full_picture(state)
    undo = undo_of(state, event)
    apply(state, event)
    assert full_picture(state) != before or isinstance(event, types.WebSocketClosed)
    undo(state)
    assert full_picture(state) == before


def test_undo_of_every_type_is_covered():
    covered = {type(e) for e in one_of_each(ObjectState())}
    union = set(typing.get_args(typing.get_args(types.Event)[0]))
    assert covered == union


def random_event(rng: random.Random, state: ObjectState, counter: list[int]) -> types.Event:
    sockets = list(state.sockets)
    choice = rng.randrange(16)
    if choice == 0 or not sockets:
        counter[0] += 1
        tags = rng.sample(["a", "b", "c", "d"], rng.randrange(3))
        return accepted(f"s{counter[0]}", *tags, hibernatable=rng.random() < 0.8)
    socket_id = rng.choice(sockets)
    keys = ["k1", "k2", "k3", "k4", "é"]
    return [
        lambda: types.AttachmentSet(socket_id=socket_id, attachment=rng.randrange(100)),
        lambda: types.CloseSent(socket_id=socket_id, code=1000),
        lambda: types.WebSocketClosed(socket_id=socket_id, code=1000, was_clean=True),
        lambda: types.WebSocketErrored(socket_id=socket_id, error="e"),
        lambda: types.MessageReceived(socket_id=socket_id, text="m"),
        lambda: types.StoragePut(
            entries={k: rng.randrange(9) for k in rng.sample(keys, rng.randrange(1, 4))}
        ),
        lambda: types.StorageDeleted(keys=rng.sample(keys, rng.randrange(1, 3))),
        lambda: types.StorageCleared(),
        lambda: types.AutoResponseSet(request="x", response=str(rng.randrange(9))),
        lambda: types.EventTimeoutSet(ms=rng.choice([None, 100, 200])),
        lambda: types.AlarmSet(scheduled_ms=rng.randrange(1, 10**6)),
        lambda: types.AlarmDeleted(),
        lambda: types.RestoreRequested(
            bookmark=bookmarks.of_seq(rng.randrange(state.seq + 1)), undo_bookmark="u"
        ),
        lambda: types.StorageRestored(
            bookmark="b",
            from_seq=0,
            storage={k: rng.randrange(9) for k in rng.sample(keys, rng.randrange(3))},
            alarm_ms=rng.choice([None, 7]),
        ),
        lambda: types.MessagePublished(tag=rng.choice([None, "a"]), binary="AA=="),
    ][choice - 1]()


def test_an_operator_close_leaves_the_socket_listed_and_closing():
    state = fold(accepted("s", "t"))
    apply(state, types.OperatorCloseSent(socket_id="s", code=4000, reason="spam", by="grace"))
    assert state.sockets["s"].close_sent and state.tag_index == {"t": {"s": None}}
    apply(state, types.OperatorMessageSent(socket_id="s", text="x", by="grace"))
    assert state.seq == 3
    apply(state, types.WebSocketClosed(socket_id="s", code=4000, reason="spam", was_clean=True))
    assert state.sockets == {} and state.tag_index == {}


def test_a_restore_by_nobody_is_stored_as_before_operators_could_restore():
    restored = types.StorageRestored(bookmark=bookmarks.of_seq(1), from_seq=1, storage={})
    assert "by" not in json.loads(types.to_data(restored))
    assert types.from_row("storage_restored", 1, types.to_data(restored)) == restored
    by = restored.model_copy(update={"by": "grace"})
    assert json.loads(types.to_data(by))["by"] == "grace"
    assert types.from_row("storage_restored", 1, types.to_data(by)) == by


@pytest.mark.parametrize("seed", range(40))
def test_undo_in_reverse_order_restores_a_random_history(seed):
    rng = random.Random(seed)
    counter = [0]
    state = ObjectState()
    for _ in range(rng.randrange(0, 15)):
        apply(state, random_event(rng, state, counter))
    before = full_picture(state)
    undos = []
    for _ in range(rng.randrange(1, 25)):
        event = random_event(rng, state, counter)
        undos.append(undo_of(state, event))
        apply(state, event)
    for undo in reversed(undos):
        undo(state)
    assert full_picture(state) == before


# -- snapshots ----------------------------------------------------------------------------


def test_snapshot_round_trip_equals_fold():
    state = rich_state()
    apply(state, types.CloseSent(socket_id="s3", code=1000))
    text = snapshot.encode(state)
    restored = snapshot.decode(text)
    assert full_picture(restored) == full_picture(state)
    assert restored.sockets == state.sockets


def test_snapshot_decodes_from_parsed_json_too():
    """jsonb columns come back parsed."""
    state = rich_state()
    restored = snapshot.decode(json.loads(snapshot.encode(state)))
    assert full_picture(restored) == full_picture(state)


def test_snapshot_keeps_a_pending_restore():
    state = rich_state()
    apply(state, types.RestoreRequested(bookmark=bookmarks.of_seq(2), undo_bookmark="u"))
    assert snapshot.decode(snapshot.encode(state)).pending_restore == bookmarks.of_seq(2)
    older = json.loads(snapshot.encode(state))
    del older["pending_restore"]  # a snapshot written before restores existed
    assert snapshot.decode(older).pending_restore is None


def test_snapshot_of_empty_state():
    restored = snapshot.decode(snapshot.encode(ObjectState()))
    assert full_picture(restored) == full_picture(ObjectState())


@pytest.mark.parametrize("seed", range(20))
def test_snapshot_then_events_equals_fold_of_all(seed):
    rng = random.Random(1000 + seed)
    counter = [0]
    events: list[types.Event] = []
    state = ObjectState()
    for _ in range(30):
        event = random_event(rng, state, counter)
        events.append(event)
        apply(state, event)
    cut = rng.randrange(len(events) + 1)
    partial = fold(*events[:cut])
    resumed = snapshot.decode(snapshot.encode(partial))
    fold(*events[cut:], state=resumed)
    assert full_picture(resumed) == full_picture(fold(*events))


def test_snapshot_holds_no_nul_and_survives_json():
    state = fold(
        types.StoragePut(entries={"k": values.encode("a\x00b"), "b": values.encode(b"\x00")}),
        accepted("s", "t"),
        types.AttachmentSet(socket_id="s", attachment=values.encode({"\x00": 1})),
    )
    text = snapshot.encode(state)
    assert "\\u0000" not in text and "\x00" not in text
    restored = snapshot.decode(text)
    assert values.decode(restored.storage["k"]) == "a\x00b"
    assert values.decode(restored.storage["b"]) == b"\x00"
    assert values.decode(restored.sockets["s"].attachment) == {"\x00": 1}


def test_snapshot_unknown_format_is_refused():
    document = json.loads(snapshot.encode(ObjectState()))
    document["format"] = 99
    with pytest.raises(ValueError, match="unknown snapshot format 99"):
        snapshot.decode(document)


def test_snapshot_does_not_share_the_state():
    state = rich_state()
    restored = snapshot.decode(snapshot.encode(state))
    before = copy.deepcopy(full_picture(state))
    apply(restored, types.StorageCleared())
    apply(restored, types.WebSocketClosed(socket_id="s1", code=1000, was_clean=True))
    assert full_picture(state) == before


# -- the row codec ------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(one_of_each(ObjectState()))))
def test_event_row_round_trip(index):
    event = one_of_each(ObjectState())[index]
    data = types.to_data(event)
    assert '"type"' not in data and '"version"' not in data
    assert types.from_row(event.type, event.version, data) == event
    assert types.from_row(event.type, event.version, json.loads(data)) == event


def test_event_rows_refuse_unknown_fields_and_types():
    with pytest.raises(ValueError):
        types.from_row("alarm_set", 1, {"scheduled_ms": 1, "extra": 2})
    with pytest.raises(ValueError):
        types.from_row("no_such_event", 1, {})
    with pytest.raises(ValueError):
        types.from_row("alarm_set", 2, {"scheduled_ms": 1})


def test_events_are_immutable():
    event = types.AlarmSet(scheduled_ms=1)
    with pytest.raises(ValueError):
        event.scheduled_ms = 2  # type: ignore[misc]
