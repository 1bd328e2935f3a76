"""The README's section on object logs: its SQL runs as written, on lines a real node kept."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import asyncpg

from service import Application, cli
from tests.object_logs.journal import Journal
from tests.support import serve

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    return README.read_text().split("\n## Object logs\n", 1)[1].split("\n## ", 1)[0]


def _queries() -> dict[str, str]:
    """The SQL blocks of the section, by the name on their first line."""
    blocks = re.findall(r"```sql\n(.*?)```", _section(), flags=re.DOTALL)
    return {re.match(r"-- query: (\S+)\n", block).group(1): block for block in blocks}  # type: ignore[union-attr]


async def test_the_readme_finds_a_rooms_errors_and_prunes_old_lines(
    database_url: str, sql: asyncpg.Connection
) -> None:
    queries = _queries()
    assert set(queries) == {"errors-of-room", "prune-logs"}
    # The journal's class under the binding the README's queries name.
    async with serve(database_url, Application({"CHAT": Journal})) as node:
        ws = await node.client.ws_connect("/chat/lobby?who=ada")
        for text in ("raise", "caught", "hello"):
            await ws.send_str(text)
        for text in ("caught", "hello"):
            assert await ws.receive_str(timeout=5) == f"ack {text}"
        await ws.close()

    errors = await sql.fetch(queries["errors-of-room"])
    assert [row["message"].splitlines()[0] for row in errors] == [
        "handler Journal.websocket_message raised",
        "lookup failed",
    ]
    assert [row["seq"] for row in errors] == sorted(row["seq"] for row in errors)

    everything = await sql.fetchval("SELECT count(*) FROM object_logs")
    await sql.execute(queries["prune-logs"])
    assert await sql.fetchval("SELECT count(*) FROM object_logs") == everything
    await sql.execute(
        "UPDATE object_logs SET logged_at = now() - interval '31 days' WHERE level >= 40"
    )
    await sql.execute(queries["prune-logs"])
    assert await sql.fetchval("SELECT count(*) FROM object_logs") == everything - 2
    assert await sql.fetchval("SELECT count(*) FROM object_logs WHERE level >= 40") == 0


def test_the_readme_commands_parse_as_written() -> None:
    (block,) = re.findall(r"```sh\n(.*?)```", _section(), flags=re.DOTALL)
    parser = cli.parser()
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        assert words[:2] == ["durable", "logs"], line
        args = parser.parse_args(words[1:])
        assert args.object == "CHAT/lobby"
