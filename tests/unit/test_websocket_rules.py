"""The argument checks of WebSocket handles and pairs, which need no running object."""

from __future__ import annotations

import pytest

from service.api.errors import DurableObjectError, InvalidAccessError
from service.api.websocket import WebSocket, WebSocketPair, WebSocketRequestResponsePair

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 1016, 2999, 3000, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 5000, 65535, -1000]


def test_pair_links_two_ends_of_one_socket():
    pair = WebSocketPair()
    client, server = pair
    assert pair[0] is client and pair[1] is server
    assert client is not server
    assert client.id == server.id
    assert len(client.id) == 32
    assert WebSocketPair()[0].id != client.id
    assert client.ready_state == WebSocket.CONNECTING


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_codes(code):
    _, server = WebSocketPair()
    with pytest.raises(InvalidAccessError) as caught:
        server.close(code, "r")
    assert str(caught.value) == f"Invalid WebSocket close code: {code}."


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_codes_pass_the_check(code):
    _, server = WebSocketPair()
    server.close(code, "r")  # never accepted: a no-op once the arguments are valid


def test_close_reason_needs_a_code():
    _, server = WebSocketPair()
    with pytest.raises(InvalidAccessError) as caught:
        server.close(reason="why")
    assert str(caught.value) == (
        "If you specify a WebSocket close reason, you must also specify a code."
    )
    assert isinstance(caught.value, DurableObjectError)


def test_close_reason_limit_is_123_utf8_bytes():
    _, server = WebSocketPair()
    server.close(1000, "x" * 123)
    server.close(1000, "é" * 61 + "x")
    with pytest.raises(ValueError) as caught:
        server.close(1000, "é" * 62)
    assert str(caught.value) == (
        "WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded."
    )
    with pytest.raises(ValueError):
        server.close(1000, "x" * 124)


def test_send_before_accept():
    client, server = WebSocketPair()
    for end in (client, server):
        with pytest.raises(TypeError) as caught:
            end.send("x")
        assert str(caught.value) == (
            "You must call one of accept() or state.acceptWebSocket() on this WebSocket "
            "before sending messages."
        )


def test_attachment_on_a_socket_not_yet_accepted():
    _, server = WebSocketPair()
    assert server.deserialize_attachment() is None
    value = {"user": "a", "raw": b"\x00\x01"}
    server.serialize_attachment(value)
    value["user"] = "changed"
    first = server.deserialize_attachment()
    assert first == {"user": "a", "raw": b"\x00\x01"}
    first["user"] = "mutated"
    assert server.deserialize_attachment()["user"] == "a"
    server.serialize_attachment(None)
    assert server.deserialize_attachment() is None


def test_attachment_limit_without_an_object_is_the_default():
    _, server = WebSocketPair()
    server.serialize_attachment("x" * 16382)  # 16,384 bytes with its quotes
    with pytest.raises(DurableObjectError) as caught:
        server.serialize_attachment("x" * 16383)
    assert str(caught.value) == (
        "A WebSocket 'attachment' cannot be larger than 16384 bytes.'attachment' was 16385 bytes."
    )


def test_auto_response_pair():
    pair = WebSocketRequestResponsePair("ping", "pong")
    assert (pair.request, pair.response) == ("ping", "pong")
    with pytest.raises(AttributeError):
        pair.request = "x"  # type: ignore[misc]
    assert pair == WebSocketRequestResponsePair("ping", "pong")
    assert pair != WebSocketRequestResponsePair("ping", "pong ")
    assert hash(pair) == hash(WebSocketRequestResponsePair("ping", "pong"))
    with pytest.raises(TypeError):
        WebSocketRequestResponsePair("ping", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        WebSocketRequestResponsePair(b"ping", "pong")  # type: ignore[arg-type]
