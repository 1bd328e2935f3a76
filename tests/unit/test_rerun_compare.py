"""The rerun's comparison: what the code decided must agree; random ids and clock readings are
normalised, and nothing else."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from service.events import types
from service.rerun.compare import Clocks, Matcher

NOW = time.time()
SAME_TURN = Clocks(recorded=NOW - 86_400, rerun=NOW)  # the log's turn ran a day earlier


def accepted(socket_id: str) -> types.WebSocketAccepted:
    return types.WebSocketAccepted(socket_id=socket_id, tags=["room"], url="http://x/r")


def put(**entries: object) -> types.StoragePut:
    return types.StoragePut(entries=entries)


def test_equal_events_agree_and_any_decided_value_differs() -> None:
    matcher = Matcher(set())
    assert matcher.difference(put(count=3), put(count=3), SAME_TURN) is None
    assert matcher.difference(put(count=3), put(count=4), SAME_TURN) == (
        "storage_put.entries.count: the log has 3, the rerun 4"
    )
    assert matcher.difference(put(a=[1, 2]), put(a=[1]), SAME_TURN) == (
        "storage_put.entries.a: the log has 2 items, the rerun 1"
    )
    assert matcher.difference(put(a=1), put(b=1), SAME_TURN) == (
        'storage_put.entries: the log has the key "a", the rerun "b"'
    )
    assert matcher.difference(put(a=1), types.AlarmDeleted(), SAME_TURN) == (
        "the log has storage_put, the rerun alarm_deleted"
    )
    assert matcher.difference(put(flag=True), put(flag=1), SAME_TURN) is not None


def test_random_ids_pair_once_and_for_all() -> None:
    matcher = Matcher(set())
    logged, made, other = (uuid.uuid4().hex for _ in range(3))
    assert matcher.difference(accepted(logged), accepted(made), SAME_TURN) is None
    assert matcher.rerun_id(logged) == made
    # Everywhere after, the pair stands for each other: in fields, values and keys.
    message = types.MessageReceived(socket_id=logged, text="hi")
    assert (
        matcher.difference(message, message.model_copy(update={"socket_id": made}), SAME_TURN)
        is None
    )
    assert (
        matcher.difference(
            put(**{f"conn:{logged}": logged}), put(**{f"conn:{made}": made}), SAME_TURN
        )
        is None
    )
    assert matcher.as_recorded(f"to {made}") == f"to {logged}"
    # ... and only for each other: a third id is not the first one renamed again.
    assert matcher.difference(accepted(logged), accepted(other), SAME_TURN) is not None
    assert matcher.difference(accepted(other), accepted(made), SAME_TURN) is not None


def test_object_ids_pair_only_when_the_rerun_made_them_at_random() -> None:
    logged, made = "a" * 64, "b" * 64
    assert Matcher(set()).difference(put(peer=logged), put(peer=made), SAME_TURN) is not None
    assert Matcher({made}).difference(put(peer=logged), put(peer=made), SAME_TURN) is None


def test_clock_readings_compare_as_offsets_from_their_turn() -> None:
    matcher = Matcher(set())
    recorded, rerun = SAME_TURN.recorded, SAME_TURN.rerun
    for unit in (1, 1_000, 1_000_000, 1_000_000_000):
        a, b = int((recorded + 0.2) * unit), int((rerun + 0.5) * unit)
        assert matcher.difference(put(at=a), put(at=b), SAME_TURN) is None, unit
        # Seconds apart is what the code decided, not when it ran.
        late = int((rerun + 5) * unit)
        assert matcher.difference(put(at=a), put(at=late), SAME_TURN) is not None, unit
    a = datetime.fromtimestamp(recorded + 0.1, UTC).isoformat()
    b = datetime.fromtimestamp(rerun, UTC).isoformat()
    assert matcher.difference(put(at=a), put(at=b), SAME_TURN) is None
    later = (datetime.fromtimestamp(rerun, UTC) + timedelta(hours=1)).isoformat()
    assert matcher.difference(put(at=a), put(at=later), SAME_TURN) is not None
    # A count is no clock reading, however the turns' times lie.
    assert matcher.difference(put(n=5), put(n=6), SAME_TURN) is not None
    # An alarm's retry may be given the live run's jitter.
    retry = Clocks(recorded, rerun, tolerance=1.0 + 0.25 * 16)
    ms = int((recorded + 16 * 1.2) * 1000), int((rerun + 16) * 1000)
    assert (
        matcher.difference(
            types.AlarmSet(scheduled_ms=ms[0]), types.AlarmSet(scheduled_ms=ms[1]), retry
        )
        is None
    )
    assert (
        matcher.difference(
            types.AlarmSet(scheduled_ms=ms[0]), types.AlarmSet(scheduled_ms=ms[1]), SAME_TURN
        )
        is not None
    )
