"""The history's one-line descriptions of the event types beyond socket and storage events."""

from __future__ import annotations

from service.events import types
from service.history.readable import describe


def test_published_messages_requests_and_alarm_runs_read_as_sentences() -> None:
    assert describe(types.MessagePublished(data={"text": "hi"})) == (
        'published {"text":"hi"} to every socket'
    )
    assert describe(types.MessagePublished(tag="room:a", binary="AAAA")) == (
        "published <3 bytes> to sockets tagged room:a"
    )
    assert describe(types.RequestReceived(method="POST", url="http://x/y", body_bytes=5)) == (
        "request POST http://x/y, 5 bytes of body"
    )
    assert describe(types.AlarmFired()) == "alarm ran"
    assert describe(types.AlarmFired(retry_count=2, is_retry=True)) == "alarm ran (retry 2)"


def test_operator_events_say_where_state_came_from() -> None:
    restored = types.StorageRestored(bookmark="0" * 20, from_seq=7, storage={"a": 1, "b": 2})
    assert describe(restored) == "storage restored to its state after seq 7 (2 keys)"
    forked = types.ObjectForked(
        source_object_id="ab" * 32,
        source_binding="CHAT",
        source_name="lobby",
        source_seq=12,
        by="ada@host",
        storage={},
    )
    assert describe(forked) == "forked from CHAT/lobby at seq 12 by ada@host"


def test_an_operators_restore_close_and_frame_say_who() -> None:
    by = "grace (admin-api from 10.0.0.7)"
    restored = types.StorageRestored(bookmark="0" * 20, from_seq=7, storage={"a": 1}, by=by)
    assert describe(restored) == f"storage restored to its state after seq 7 (1 keys) by {by}"
    closed = types.OperatorCloseSent(socket_id="ab12", code=4000, reason="spam", by=by)
    assert describe(closed) == f'socket ab12 closed by {by}: 4000 "spam"'
    text = types.OperatorMessageSent(socket_id="ab12", text="restart at 6", by=by)
    assert describe(text) == f'sent "restart at 6" to socket ab12 by {by}'
    binary = types.OperatorMessageSent(socket_id="ab12", binary="AAEC", by=by)
    assert describe(binary) == f"sent <3 bytes binary> to socket ab12 by {by}"
    padded = types.OperatorMessageSent(socket_id="ab12", binary="AA==", by=by)
    assert describe(padded) == f"sent <1 bytes binary> to socket ab12 by {by}"
