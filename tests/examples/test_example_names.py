"""The names the examples refuse get a 400 that says why, never a 500 from deeper down.

A user or player id becomes a tag (and the chat's room name too), which PostgreSQL must
hold as text: NUL cannot be, so before these checks such a name failed in
``ctx.accept_websocket`` and came back as an internal error.
"""

from __future__ import annotations

import json

import aiohttp
import asyncpg
import pytest

from tests.examples.support import receive, serve_example

#: Each example's query parameter for the person, and what its messages call it.
PARAMETERS = {"chat": ("username", "user name"), "presence": ("userId", "user id"),
              "game": ("playerId", "player id")}  # fmt: skip

CONTROL = "cannot contain control characters (such as NUL or a line break)"


async def refusal(node, path: str) -> str:
    """The 400 for ``path``, as a WebSocket client sees it and as a plain GET reads it."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
        await node.client.ws_connect(path)
    assert raised.value.status == 400, path
    # A browser cannot read a refused handshake; a plain GET of the same URL says why.
    response = await node.client.get(path)
    assert response.status == 400, path
    return await response.text()


@pytest.mark.parametrize("example_name", list(PARAMETERS))
async def test_bad_names_are_refused_with_the_reason(database_url, example_name):
    parameter, what = PARAMETERS[example_name]
    async with serve_example(database_url, example_name) as node:
        base = f"/{example_name}/lobby?{parameter}="
        assert await refusal(node, base + "ada%00lovelace") == f"A {what} {CONTROL}"
        assert await refusal(node, base + "two%0Alines") == f"A {what} {CONTROL}"
        assert await refusal(node, base + "tab%09bed") == f"A {what} {CONTROL}"
        assert await refusal(node, base + "x" * 33) == f"A {what} has at most 32 characters"
        assert await refusal(node, base) == f"Missing ?{parameter}=" + (
            "NAME" if example_name == "chat" else "ID"
        )

        # Any other text is a fine name, and the refusals left no socket behind.
        ws = await node.client.ws_connect(base + "Zo%C3%AB%20%F0%9F%8E%B2")
        frames = [await receive(ws) for _ in range(2 if example_name == "chat" else 1)]
        assert "Zoë 🎲" in json.dumps(frames[-1], ensure_ascii=False), frames
        connection = await asyncpg.connect(database_url)
        try:
            tags = await connection.fetchval(
                "SELECT array_agg(tag) FROM websockets, unnest(tags) AS tag"
            )
        finally:
            await connection.close()
        assert [tag.split(":", 1)[1] for tag in tags if not tag.startswith("room:")] == ["Zoë 🎲"]
        await ws.close()


async def test_chat_refuses_bad_room_names(database_url):
    async with serve_example(database_url, "chat") as node:
        assert await refusal(node, "/chat/bell%07?username=ann") == f"A room name {CONTROL}"
        assert (
            await refusal(node, "/chat/" + "r" * 33 + "?username=ann")
            == "A room name has at most 32 characters"
        )


@pytest.mark.parametrize("example_name", list(PARAMETERS))
async def test_a_good_name_without_upgrade_still_gets_426(database_url, example_name):
    parameter, _ = PARAMETERS[example_name]
    async with serve_example(database_url, example_name) as node:
        response = await node.client.get(f"/{example_name}/lobby?{parameter}=ann")
        assert response.status == 426
        assert await response.text() == "Expected WebSocket upgrade"
