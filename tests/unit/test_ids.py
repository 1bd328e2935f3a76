"""Object ids: the workerd layout, determinism, the namespace MAC, and the error texts."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from service.api.ids import DurableObjectId, IdFactory
from service.api.namespace import DurableObjectNamespace

INVALID = "Invalid Durable Object ID: must be 64 hex digits"
WRONG_NAMESPACE = "Durable Object ID is not valid for this namespace."


def reference_id(unique_key: str, name: str) -> str:
    """The id SPEC §4 defines, computed independently of the code under test."""
    ns_key = hashlib.sha256(unique_key.encode("utf-8")).digest()
    base = hmac.new(ns_key, name.encode("utf-8"), hashlib.sha256).digest()[:16]
    mac = hmac.new(ns_key, base, hashlib.sha256).digest()[:16]
    return (base + mac).hex()


@pytest.mark.parametrize("name", ["room", "", "héllo ✓", "a" * 1000, "with/slash"])
def test_id_from_name_follows_the_reference_layout(name):
    object_id = IdFactory("CHAT").from_name(name)
    assert object_id.to_string() == reference_id("CHAT", name)
    assert object_id.name == name


def test_id_from_name_is_deterministic_and_per_namespace():
    first = IdFactory("CHAT").from_name("room")
    again = IdFactory("CHAT").from_name("room")
    other_name = IdFactory("CHAT").from_name("room2")
    other_namespace = IdFactory("GAME").from_name("room")
    assert first == again and first.equals(again) and hash(first) == hash(again)
    assert first != other_name
    assert first != other_namespace


def test_id_is_64_lowercase_hex():
    text = IdFactory("X").from_name("n").to_string()
    assert len(text) == 64
    assert text == text.lower()
    int(text, 16)
    assert str(IdFactory("X").from_name("n")) == text


def test_id_from_name_needs_a_string():
    with pytest.raises(TypeError):
        IdFactory("X").from_name(123)  # type: ignore[arg-type]


def test_id_from_string_round_trip_has_no_name():
    ids = IdFactory("CHAT")
    named = ids.from_name("room")
    parsed = ids.from_string(named.to_string())
    assert parsed == named and parsed.equals(named)
    assert parsed.name is None


def test_id_from_string_accepts_uppercase_and_gives_lowercase():
    ids = IdFactory("CHAT")
    text = ids.from_name("room").to_string()
    parsed = ids.from_string(text.upper())
    assert parsed.to_string() == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "0" * 63,
        "0" * 65,
        "g" * 64,
        " " + "0" * 63,
        "0" * 64 + "\n",
        "0x" + "0" * 62,
        "é" * 64,
    ],
    ids=repr,
)
def test_id_from_string_refuses_what_is_not_64_hex_digits(text):
    with pytest.raises(TypeError) as caught:
        IdFactory("CHAT").from_string(text)
    assert str(caught.value) == INVALID


def test_id_from_string_refuses_non_strings():
    with pytest.raises(TypeError) as caught:
        IdFactory("CHAT").from_string(None)  # type: ignore[arg-type]
    assert str(caught.value) == INVALID


def test_id_from_string_checks_the_namespace_mac():
    chat, game = IdFactory("CHAT"), IdFactory("GAME")
    for object_id in (chat.from_name("room"), chat.unique()):
        with pytest.raises(TypeError) as caught:
            game.from_string(object_id.to_string())
        assert str(caught.value) == WRONG_NAMESPACE


def test_any_flipped_bit_is_refused():
    ids = IdFactory("CHAT")
    raw = bytearray(bytes.fromhex(ids.from_name("room").to_string()))
    for index in (0, 15, 16, 31):
        tampered = bytearray(raw)
        tampered[index] ^= 1
        with pytest.raises(TypeError) as caught:
            ids.from_string(tampered.hex())
        assert str(caught.value) == WRONG_NAMESPACE


def test_new_unique_ids_never_repeat_and_belong_to_their_namespace():
    ids = IdFactory("CHAT")
    made = [ids.unique() for _ in range(2000)]
    assert len({i.to_string() for i in made}) == len(made)
    for object_id in made[:50]:
        assert object_id.name is None
        assert ids.from_string(object_id.to_string()) == object_id


def test_id_equality_is_by_bytes():
    text = IdFactory("CHAT").from_name("room").to_string()
    assert DurableObjectId(text, "room") == DurableObjectId(text)
    assert DurableObjectId(text) != text
    assert {DurableObjectId(text), DurableObjectId(text, "room")} == {DurableObjectId(text)}
    assert "room" in repr(DurableObjectId(text, "room"))


def namespace(key: str = "THING") -> DurableObjectNamespace:
    # Making ids and stubs never reaches the host: creating a stub sends nothing.
    return DurableObjectNamespace("THING", key, host=None)  # type: ignore[arg-type]


def test_namespace_ids_match_its_unique_key():
    ns = namespace("secret")
    assert ns.id_from_name("a").to_string() == reference_id("secret", "a")
    with pytest.raises(TypeError) as caught:
        namespace("other").id_from_string(ns.id_from_name("a").to_string())
    assert str(caught.value) == WRONG_NAMESPACE
    with pytest.raises(TypeError) as caught:
        ns.id_from_string("nope")
    assert str(caught.value) == INVALID


def test_new_unique_id_with_a_jurisdiction_is_refused():
    with pytest.raises(TypeError) as caught:
        namespace().new_unique_id(jurisdiction="eu")
    assert str(caught.value) == "Jurisdiction restrictions are not implemented."
    assert namespace().new_unique_id().name is None


def test_stubs_carry_id_and_name():
    ns = namespace()
    stub = ns.get_by_name("alpha")
    assert stub.id == ns.id_from_name("alpha")
    assert stub.name == "alpha"
    by_id = ns.get(ns.id_from_string(stub.id.to_string()))
    assert by_id.id == stub.id and by_id.name is None
    with pytest.raises(TypeError):
        ns.get("not an id")  # type: ignore[arg-type]
