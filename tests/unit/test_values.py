"""The value codec: what JSON holds plus bytes, jsonb-safe, copied at call time."""

from __future__ import annotations

import json
import math

import pytest

from service.events import values

ROUND_TRIP = [
    None,
    True,
    False,
    0,
    -17,
    2**70,
    1.5,
    -0.25,
    "",
    "plain",
    "héllo wörld ✓ 𝄞",
    "nul\x00inside",
    "\x00",
    b"",
    b"\x00\x01\xff binary",
    [],
    [1, "two", None, [3.0, b"\x00"]],
    {},
    {"a": 1, "b": [True, {"c": b"xyz"}]},
    {"$bytes": "not really bytes"},
    {"$str": "not really a string"},
    {"$obj": [["k", "v"]]},
    {"$bytes": 1, "other": 2},
    {"$unknown": 1},
    {"key\x00with nul": "value\x00too"},
    {"nested": {"$bytes": "x"}, "list": [{"$str": "y"}]},
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_round_trip(value):
    assert values.decode(values.encode(value)) == value


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_round_trip_through_json_text(value):
    """What the store keeps is JSON text (jsonb); decoding that must give the value back."""
    text = values.dumps(values.encode(value))
    assert values.decode(json.loads(text)) == value


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_encoded_form_holds_no_nul(value):
    """jsonb refuses \\u0000 anywhere, in keys and in strings."""
    text = values.dumps(values.encode(value))
    assert "\x00" not in text
    assert "\\u0000" not in text


def test_bytes_types_come_back_as_bytes():
    for raw in (b"abc", bytearray(b"abc"), memoryview(b"abc")):
        decoded = values.decode(values.encode(raw))
        assert type(decoded) is bytes
        assert decoded == b"abc"


def test_bytes_are_tagged_base64():
    assert values.encode(b"\x00\xff") == {"$bytes": "AP8="}


def test_nul_string_is_tagged_and_plain_string_is_not():
    assert values.encode("a\x00b") == {"$str": "YQBi"}
    assert values.encode("ab") == "ab"


def test_dict_that_looks_like_a_wrapper_is_wrapped():
    for tag in ("$bytes", "$str", "$obj"):
        encoded = values.encode({tag: "payload"})
        assert list(encoded) == ["$obj"]
        assert values.decode(encoded) == {tag: "payload"}
        assert type(values.decode(encoded)[tag]) is str


def test_dict_with_other_dollar_keys_is_not_wrapped():
    assert values.encode({"$bytes": 1, "b": 2}) == {"$bytes": 1, "b": 2}
    assert values.encode({"$x": 1}) == {"$x": 1}


def test_tuple_becomes_list():
    assert values.decode(values.encode((1, (2, 3)))) == [1, [2, 3]]


def test_dict_key_order_is_kept():
    value = {"z": 1, "a": 2, "m": 3}
    assert list(values.decode(values.encode(value))) == ["z", "a", "m"]
    wrapped = {"z\x00": 1, "a": 2}
    assert list(values.decode(values.encode(wrapped))) == ["z\x00", "a"]


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, [1, math.nan], {"a": {"b": math.inf}}],
    ids=repr,
)
def test_non_finite_floats_are_refused(value):
    with pytest.raises(TypeError, match="only finite numbers are storable"):
        values.encode(value)


@pytest.mark.parametrize(
    "value",
    [{1, 2}, object(), complex(1, 2), [lambda: None], {"a": frozenset()}],
    ids=lambda v: type(v).__name__,
)
def test_unstorable_types_are_refused(value):
    with pytest.raises(TypeError, match="Cannot store a value of type"):
        values.encode(value)


def test_non_string_dict_keys_are_refused():
    with pytest.raises(TypeError, match="keys must be str"):
        values.encode({1: "a"})
    with pytest.raises(TypeError, match="keys must be str"):
        values.encode({"ok": {None: 1}})


@pytest.mark.parametrize("value", ["\ud800", ["a\udfffb"], {"k\ud800": 1}], ids=repr)
def test_lone_surrogates_are_refused(value):
    with pytest.raises(TypeError, match="not valid Unicode text"):
        values.encode(value)


def test_lone_surrogate_in_nul_string_is_refused():
    with pytest.raises(TypeError, match="not valid Unicode text"):
        values.encode("\x00\ud800")


def test_encode_copies_at_call_time():
    value = {"list": [1, 2], "inner": {"x": 1}}
    encoded = values.encode(value)
    value["list"].append(3)
    value["inner"]["x"] = 2
    value["new"] = True
    assert values.decode(encoded) == {"list": [1, 2], "inner": {"x": 1}}


def test_bytearray_is_copied_at_call_time():
    buffer = bytearray(b"abc")
    encoded = values.encode(buffer)
    buffer[0] = ord("z")
    assert values.decode(encoded) == b"abc"


def test_decode_gives_a_fresh_copy_each_time():
    encoded = values.encode({"list": [1], "inner": {"x": 1}})
    first = values.decode(encoded)
    second = values.decode(encoded)
    assert first == second
    assert first is not second
    assert first["list"] is not second["list"]
    first["list"].append(2)
    first["inner"]["x"] = 99
    assert values.decode(encoded) == {"list": [1], "inner": {"x": 1}}


def test_clone_shares_nothing():
    original = {"a": [1, {"b": b"x"}]}
    copy = values.decode(values.encode(original))  # a structured clone
    assert copy == original
    copy["a"][1]["b"] = b"y"
    copy["a"].append(2)
    assert original == {"a": [1, {"b": b"x"}]}


def test_size_is_utf8_bytes_of_the_compact_form():
    assert values.size_of(values.encode("abc")) == 5
    assert values.size_of(values.encode("é")) == 4
    assert values.size_of(values.encode({"a": [1, 2]})) == len('{"a":[1,2]}')
    assert values.size_of(values.encode(None)) == 4
    assert values.dumps(values.encode({"é": "✓"})) == '{"é":"✓"}'


def test_encode_str_matches_encode():
    for text in ("", "abc", "a\x00", "é"):
        assert values.encode_str(text) == values.encode(text)
