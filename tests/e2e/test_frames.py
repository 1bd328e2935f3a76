"""Frames the gateway writes reach real clients intact: every length encoding, text and
binary, with and without permessage-deflate (off unless enabled), and a broadcast framed
once for many sockets."""

from __future__ import annotations

import pytest

from service import Application, DurableObject, Response, WebSocketPair
from service.gateway import frames
from tests.support import serve

#: Payload lengths around each boundary of the frame header's length field.
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def _payloads() -> list[str | bytes]:
    texts: list[str | bytes] = [("é" if n % 2 else "a") * n for n in SIZES]  # multi-byte too
    blobs: list[str | bytes] = [bytes(range(256)) * (n // 256) + bytes(n % 256) for n in SIZES]
    return texts + blobs


class Sizes(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        for payload in _payloads():
            for peer in self.ctx.get_websockets():
                peer.send(payload)


@pytest.mark.parametrize(("offered", "enabled"), [(0, False), (15, False), (15, True)])
async def test_every_length_and_kind_arrives_intact(database_url, offered, enabled):
    app = Application({"S": Sizes})
    async with serve(database_url, app, websocket_compression=enabled) as node:
        sockets = [await node.client.ws_connect("/s/room", compress=offered) for _ in range(3)]
        # Compression only when the client offers it and the node allows it (off by default).
        assert [ws.compress for ws in sockets] == [15 if offered and enabled else 0] * 3
        await sockets[0].send_str("go")
        for ws in sockets:
            got = []
            for _ in range(len(_payloads())):
                message = await ws.receive(timeout=10)
                got.append(message.data)
            assert got == _payloads()
            await ws.close()


def test_a_frame_header_encodes_the_length_in_the_smallest_form():
    assert frames.build("hi") == b"\x81\x02hi"
    assert frames.build(b"\x00" * 126)[:4] == b"\x82\x7e\x00\x7e"
    assert frames.build(b"\x00" * 65536)[:10] == b"\x82\x7f" + (65536).to_bytes(8, "big")
    cache = frames.FrameCache()
    assert cache.frame("same") is cache.frame("sa" + "me")
