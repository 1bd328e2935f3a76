"""The README's code runs: its Python blocks serve a working room.

They are read from the README at test time, so a changed example is tested as it now reads.
Its SQL examples are tested the same way, on the examples' data, in
tests/history/test_sql_examples.py (and their plans in tests/store/test_sql_plans.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from tests.support import eventually, serve

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


async def test_readme_python_serves_a_room_of_its_own(database_url):
    python_blocks = _blocks("python")
    assert python_blocks, "the README has no Python example"
    namespace: dict[str, object] = {"__name__": "readme_example"}
    for block in python_blocks:
        exec(compile(block, str(README), "exec"), namespace)
    app = namespace["app"]

    async with serve(database_url, app) as node:  # type: ignore[arg-type]
        plain = await node.client.get("/rooms/hall")
        assert plain.status == 426
        ada = await node.client.ws_connect("/rooms/hall?username=ada")
        bob = await node.client.ws_connect("/rooms/hall?username=bob")
        await ada.send_str("ping")
        assert await ada.receive_str(timeout=5) == "pong"
        await ada.send_str("hello")
        assert await ada.receive_str(timeout=5) == "ada: hello"
        assert await bob.receive_str(timeout=5) == "ada: hello"
        # The RPC example's router calls the room's method.
        members = await node.client.get("/rooms/hall/members")
        assert await members.json() == {"members": 2}
        await bob.close()
        assert await ada.receive_str(timeout=5) == "bob left"
        members = await node.client.get("/rooms/hall/members")
        assert await members.json() == {"members": 1}

        connection = await asyncpg.connect(database_url)
        try:
            # Its own binding: nothing of it is in the chat example's CHAT rooms.
            objects = await connection.fetch("SELECT binding, name FROM objects")
            assert [tuple(row) for row in objects] == [("ROOMS", "hall")]
            await eventually(lambda: _count_open(connection), timeout=5)
        finally:
            await connection.close()
        await ada.close()


async def _count_open(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT count(*) FROM presence") == 1
