"""A turn's output for sockets other nodes hold becomes outbox rows, in the turn's order;
what this node holds stays in the turn."""

from __future__ import annotations

from service.runtime import remote_outputs
from service.runtime.turn import Resume, Turn

HERE = {"a", "b"}


def here(socket_id: str) -> bool:
    return socket_id in HERE


def test_a_turn_that_sends_only_here_keeps_its_output_and_copies_nothing() -> None:
    outputs = [("send", "a", "x"), ("close", "b", (1000, "bye"))]
    turn = Turn(outputs=outputs)
    assert remote_outputs.take(turn, "obj", here) is None
    assert turn.outputs is outputs


def test_output_for_other_nodes_sockets_becomes_rows_in_order() -> None:
    turn = Turn(
        outputs=[
            ("send", "a", "mine"),
            ("send", "far", "text"),
            ("publish", "far", (b"\x00\xff", 3)),
            ("send", "b", "mine too"),
            ("close", "far", (4001, "spam")),
            ("resume", "far2", Resume(5, 9, ("room",), 100)),
            ("auto_response", "far2", ("ping", "pong")),
        ]
    )
    rows = remote_outputs.take(turn, "obj", here)
    assert turn.outputs == [("send", "a", "mine"), ("send", "b", "mine too")]
    assert rows is not None
    assert [(r.socket_id, r.kind) for r in rows] == [
        ("far", "text"),
        ("far", "binary"),
        ("far", "close"),
        ("far2", "resume"),
        ("far2", "auto_response"),
    ]
    assert rows[0].text == "text" and rows[1].data == b"\x00\xff"
    assert (rows[2].code, rows[2].reason) == (4001, "spam")
    assert rows[3].reply == {
        "object_id": "obj",
        "after": 5,
        "last_seq": 9,
        "tags": ["room"],
        "limit": 100,
    }
    assert rows[4].reply == {"object_id": "obj", "pair": ["ping", "pong"]}
