"""The README's code runs: its Python blocks serve a working chat, its SQL answers."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from tests.support import eventually, serve

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


async def test_readme_python_serves_a_chat_and_its_sql_answers(database_url):
    python_blocks = _blocks("python")
    assert python_blocks, "the README has no Python example"
    namespace: dict[str, object] = {"__name__": "readme_example"}
    for block in python_blocks:
        exec(compile(block, str(README), "exec"), namespace)
    app = namespace["app"]

    async with serve(database_url, app) as node:  # type: ignore[arg-type]
        plain = await node.client.get("/chat/lobby")
        assert plain.status == 426
        ada = await node.client.ws_connect("/chat/lobby?username=ada")
        bob = await node.client.ws_connect("/chat/lobby?username=bob")
        await ada.send_str("ping")
        assert await ada.receive_str(timeout=5) == "pong"
        await ada.send_str("hello")
        assert await ada.receive_str(timeout=5) == "ada: hello"
        assert await bob.receive_str(timeout=5) == "ada: hello"

        connection = await asyncpg.connect(database_url)
        try:
            sql = _blocks("sql")
            assert len(sql) == 3
            online = await connection.fetch(sql[0])
            assert [r["username"] for r in online] == ["ada", "bob"]
            tagged = await connection.fetch(sql[1])
            assert [r["room"] for r in tagged] == ["lobby"]
            audit = await connection.fetch(sql[2])
            assert [(r["sender"], r["text"]) for r in audit] == [("ada", "hello")]

            await bob.close()
            assert await ada.receive_str(timeout=5) == "bob left"
            await eventually(lambda: _count_open(connection), timeout=5)
        finally:
            await connection.close()
        await ada.close()


async def _count_open(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT count(*) FROM presence") == 1
