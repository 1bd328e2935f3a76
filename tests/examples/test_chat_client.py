"""The README's minimal chat client: its connection is dropped by the server while the room
goes on, and it comes back with every line exactly once, in order."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import asyncpg

from service.gateway import keys
from tests.e2e.test_readme import README
from tests.examples.support import receive_type, send, serve_example
from tests.support import eventually


def follow_function() -> Any:
    """``follow`` as the README defines it (the block that does)."""
    (block,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
        if "async def follow(" in block
    ]
    namespace: dict[str, Any] = {"__name__": "readme_client"}
    exec(compile(block, str(README), "exec"), namespace)
    return namespace["follow"]


async def room_log(database_url: str) -> list[tuple[int, Any]]:
    """(seq, line) of every line the room published, and the seqs of the reader's accepts."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT seq, type, data FROM events"
            " WHERE type IN ('message_published', 'websocket_accepted') ORDER BY seq"
        )
    finally:
        await connection.close()
    return [(row["seq"], json.loads(row["data"])) for row in rows]


async def socket_of(database_url: str, username: str) -> str:
    """The id of the open socket of ``username``, as the presence view knows it."""
    connection = await asyncpg.connect(database_url)
    try:
        socket_id: str = await connection.fetchval(
            "SELECT socket_id FROM presence WHERE tags @> ARRAY[$1]", f"user:{username}"
        )
    finally:
        await connection.close()
    return socket_id


async def test_the_readme_client_misses_nothing_across_a_dropped_connection(database_url):
    follow = follow_function()
    async with serve_example(database_url, "chat") as node:
        url = str(node.client.make_url("/chat/den?username=reader"))
        lines: list[Any] = []
        reader = asyncio.ensure_future(follow(url, lines.append))
        try:
            bob = await node.client.ws_connect("/chat/den?username=bob")
            await receive_type(bob, "join")
            await send(bob, type="message", text="one")
            await eventually(lambda: any(line.get("text") == "one" for line in lines))

            # The server drops the reader's connection (no Close frame); the client waits a
            # second before it comes back, and the room goes on meanwhile.
            entry = node.webapp[keys.REGISTRY].entries[await socket_of(database_url, "reader")]
            assert entry.transport is not None
            entry.transport.abort()
            for text in ("two", "three"):
                await send(bob, type="message", text=text)
            await send(bob, type="message", text="four")
            await eventually(lambda: any(line.get("text") == "four" for line in lines), 10)
            log = await room_log(database_url)  # before the reader leaves (and that is logged)
        finally:
            reader.cancel()
    published = [(seq, data["data"]) for seq, data in log if "tag" in data]
    first_line = next(i for i, (_, line) in enumerate(published) if line["username"] == "reader")
    # Everything the room published from the reader's arrival on, once each, in order.
    assert lines == [line for _, line in published[first_line:]]
    texts = [line["text"] for line in lines if line["type"] == "message"]
    assert texts == ["one", "two", "three", "four"]
    # It was away when two and three were said: it came back after them, and resumed.
    accepts = [seq for seq, data in log if "tags" in data and "user:reader" in data["tags"]]
    three = next(seq for seq, line in published if line.get("text") == "three")
    assert len(accepts) == 2 and accepts[1] > three
