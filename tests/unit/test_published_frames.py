"""The frames of published messages: the wire format clients parse (README, "Missed messages")."""

from __future__ import annotations

import json

from service.api import published
from service.events import types


def test_bytes_go_in_a_binary_frame_after_their_seq():
    event = published.event(b"\x01\x02", None)
    assert event == types.MessagePublished(binary="AQI=")
    assert published.frame(17, event) == (17).to_bytes(8, "big") + b"\x01\x02"
    assert published.frame(2**40, event)[:8] == b"\x00\x00\x01\x00\x00\x00\x00\x00"


def test_json_goes_in_a_text_frame_with_its_seq():
    event = published.event({"a": "é\x00", "b": [1.5, None, True]}, "t")
    frame = published.frame(3, event)
    assert frame == '{"seq":3,"data":{"a":"é\\u0000","b":[1.5,null,true]}}'
    assert json.loads(frame) == {"seq": 3, "data": {"a": "é\x00", "b": [1.5, None, True]}}
    # The event keeps the value as storage keeps values (a NUL cannot be PostgreSQL text).
    assert event.tag == "t" and event.data == {"a": {"$str": "w6kA"}, "b": [1.5, None, True]}


def test_logged_text_goes_on_the_wire_as_it_is_unless_it_holds_a_wrapper():
    assert published.text_frame(5, '{"a": 1e20}') == '{"seq":5,"data":{"a": 1e20}}'
    # A wrapper (or what looks like one: "$5") is decoded and encoded again.
    assert published.text_frame(5, '{"$str":"eAB5"}') == '{"seq":5,"data":"x\\u0000y"}'
    assert published.text_frame(5, '["$5"]') == '{"seq":5,"data":["$5"]}'
    for data in ["text", {"k": [1, {"$bytes": "not bytes"}]}, None, 1e20, "$5", "\x00"]:
        assert json.loads(published.frame(5, published.event(data, None))) == {
            "seq": 5,
            "data": data,
        }


def test_the_truncation_frame():
    assert published.truncated(9) == '{"seq":9,"truncated":true}'
    assert len(published.ahead_reason(2**63 - 1, 2**63 - 2).encode()) <= 123
