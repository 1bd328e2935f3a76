"""The client's half of the WebSocket opening handshake, checked before an object sees it.

An upgrade the gateway could not complete must not run the object's ``fetch``: the object
would accept a socket, log it and tell its room of a client that never connected. So a
request that asks for a WebSocket is checked here first (RFC 6455, section 4.2.1) and
refused as aiohttp refuses it for a plain WebSocket server: 400, with aiohttp's texts.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import hdrs, web

#: The only version of the protocol there is (RFC 6455, section 4.4).
VERSION = "13"


def wants_websocket(request: web.Request) -> bool:
    """Whether the request asks to be upgraded to a WebSocket."""
    return request.headers.get(hdrs.UPGRADE, "").strip().lower() == "websocket"


def refusal(request: web.Request) -> web.Response | None:
    """The 400 for a WebSocket upgrade request that is not a valid handshake, else None."""
    headers = request.headers
    if request.method != hdrs.METH_GET:
        return _bad(f"A WebSocket upgrade must be a GET request, not {request.method}.")
    connection = ",".join(headers.getall(hdrs.CONNECTION, ()))
    if "upgrade" not in {token.strip().lower() for token in connection.split(",")}:
        return _bad(f"No CONNECTION upgrade hdr: {headers.get(hdrs.CONNECTION)}")
    version = headers.get(hdrs.SEC_WEBSOCKET_VERSION, "")
    if version.strip() != VERSION:
        # Section 4.4: the refusal names the versions the server speaks.
        return _bad(f"Unsupported version: {version}", {hdrs.SEC_WEBSOCKET_VERSION: VERSION})
    key = headers.get(hdrs.SEC_WEBSOCKET_KEY, "")
    try:
        valid = len(base64.b64decode(key.strip(), validate=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        return _bad(f"Handshake error: {key!r}")
    return None


def _bad(text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=400, text=text, headers=headers)
