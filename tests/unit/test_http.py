"""Headers, Request and Response: the plain HTTP values user code sees."""

from __future__ import annotations

import pytest

from service.api.http import Headers, Request, Response
from service.api.websocket import WebSocketPair


def test_headers_are_case_insensitive():
    headers = Headers({"Content-Type": "text/plain"})
    assert headers["content-type"] == "text/plain"
    assert headers.get("CONTENT-TYPE") == "text/plain"
    assert "content-TYPE" in headers
    assert headers.get("missing") is None
    assert 1 not in headers


def test_headers_keep_one_value_per_name_and_the_last_spelling():
    headers = Headers([("X-A", "1"), ("x-a", "2")])
    assert len(headers) == 1
    assert headers["X-A"] == "2"
    assert list(headers) == ["x-a"]


def test_headers_iterate_with_original_names():
    headers = Headers([("X-First", "1"), ("x-second", "2")])
    assert list(headers) == ["X-First", "x-second"]
    assert dict(headers.items()) == {"X-First": "1", "x-second": "2"}


def test_headers_set_delete_and_stringify():
    headers = Headers()
    headers["Retry-After"] = 5  # type: ignore[assignment]
    assert headers["retry-after"] == "5"
    del headers["RETRY-AFTER"]
    assert len(headers) == 0
    with pytest.raises(KeyError):
        del headers["retry-after"]
    with pytest.raises(KeyError):
        headers["nope"]
    assert repr(Headers({"A": "b"})) == "Headers({'A': 'b'})"


async def test_request_values():
    request = Request(
        "http://host/path/x?a=1&a=2&b=&c=%C3%A9",
        method="post",
        headers={"Upgrade": "websocket"},
        body="héllo",
    )
    assert request.method == "POST"
    assert request.path == "/path/x"
    assert request.query == {"a": "1", "b": "", "c": "é"}
    assert request.headers.get("upgrade") == "websocket"
    assert request.body == "héllo".encode()
    assert await request.text() == "héllo"
    assert await request.bytes() == "héllo".encode()


async def test_request_json_and_defaults():
    request = Request("http://host", body=b'{"a": [1]}')
    assert request.method == "GET"
    assert request.path == "/"
    assert await request.json() == {"a": [1]}
    assert Request("http://host").body == b""


async def test_response_defaults():
    response = Response("hi")
    assert response.status == 200
    assert response.body == b"hi"
    assert response.headers["content-type"] == "text/plain;charset=UTF-8"
    assert await response.text() == "hi"
    assert response.websocket is None
    empty = Response(status=204)
    assert empty.body == b"" and "content-type" not in empty.headers
    assert Response(b"\x00").headers.get("content-type") is None


def test_response_keeps_an_explicit_content_type():
    response = Response("<p>", headers={"content-type": "text/html"})
    assert response.headers["Content-Type"] == "text/html"


async def test_response_json():
    response = Response.json({"é": [1, None]}, status=201, headers={"X-A": "b"})
    assert response.status == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-a"] == "b"
    assert await response.text() == '{"é": [1, null]}'


@pytest.mark.parametrize("status", [200, 204, 301, 404, 426, 599])
def test_response_status_in_range(status):
    assert Response(status=status).status == status


@pytest.mark.parametrize("status", [0, 101, 199, 600, 1000, -1])
def test_response_status_out_of_range(status):
    with pytest.raises(ValueError) as caught:
        Response(status=status)
    assert str(caught.value) == (
        "Responses may only be constructed with status codes in the range 200 to 599, "
        f"inclusive. Got {status}."
    )


def test_response_with_a_websocket_needs_status_101():
    client, _server = WebSocketPair()
    with pytest.raises(TypeError):
        Response(status=200, websocket=client)
    assert Response(status=101, websocket=client).websocket is client
