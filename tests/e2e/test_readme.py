"""The README's code runs: its Python blocks serve a working room, its SQL answers.

Both are read from the README at test time: a changed example is tested as it now reads,
and an SQL example without a check here fails the test until it gets one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import asyncpg

from tests.examples.support import receive_type, send, serve_example
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
        await bob.close()
        assert await ada.receive_str(timeout=5) == "bob left"

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


def _frame(**payload: object) -> str:
    """A frame as ``send`` writes it (and the room records it)."""
    return json.dumps(payload)


async def test_readme_sql_answers_what_its_text_says(database_url):
    """Every ```sql block, run against the chat example after real clients chatted."""
    async with serve_example(database_url, "chat") as node:
        ada = await node.client.ws_connect("/chat/lobby?username=ada")
        await receive_type(ada, "join")
        bob = await node.client.ws_connect("/chat/lobby?username=bob")
        await receive_type(bob, "join")
        ada_elsewhere = await node.client.ws_connect("/chat/den?username=ada")
        await receive_type(ada_elsewhere, "join")

        await send(ada, type="message", text="hello bob")
        await receive_type(bob, "message")
        await send(bob, type="message", content="hi ada")  # the other common shape
        await receive_type(ada, "message")
        await ada.send_str("not json")  # refused by the room, kept in the audit trail
        await receive_type(ada, "error")
        await send(ada_elsewhere, type="message", text="in another room")
        await receive_type(ada_elsewhere, "message")

        checks = [
            # Who is in the lobby right now: ada then bob, in order of arrival.
            lambda rows: [r["username"] for r in rows] == ["ada", "bob"],
            # Everyone tagged user:ada, with the room: the lobby and the den.
            lambda rows: sorted(r["room"] for r in rows) == ["den", "lobby"],
            # The lobby's messages: who sent them and their text (not their frames).
            lambda rows: (
                [(r["sender"], r["text"]) for r in rows]
                == [("ada", "hello bob"), ("bob", "hi ada")]
            ),
            # The lobby's audit trail: each frame as sent, the refused one too.
            lambda rows: (
                [(r["sender"], r["frame"]) for r in rows]
                == [
                    ("ada", _frame(type="message", text="hello bob")),
                    ("bob", _frame(type="message", content="hi ada")),
                    ("ada", "not json"),
                ]
            ),
        ]
        queries = _blocks("sql")
        assert len(queries) == len(checks), "each SQL example of the README needs its check"
        connection = await asyncpg.connect(database_url)
        try:
            for query, check in zip(queries, checks, strict=True):
                rows = await connection.fetch(query)
                assert check(rows), f"{query}\ngave {[dict(row) for row in rows]}"
                if rows and "seq" in rows[0]:
                    seqs = [row["seq"] for row in rows]
                    assert seqs == sorted(seqs) and all(r["recorded_at"] for r in rows)
        finally:
            await connection.close()
        for ws in (ada, bob, ada_elsewhere):
            await ws.close()
