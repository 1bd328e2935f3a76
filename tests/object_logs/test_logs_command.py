"""``durable logs``: a table for people, JSON lines for scripts, a seq or time range, one-line
errors, and ``--follow``, which prints every line once, in order, as its turn commits."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg

from tests.cli.process import child_env, durable
from tests.history_cli.support import run
from tests.object_logs.journal import app
from tests.object_logs.support import lines_of, seqs_of
from tests.support import serve

#: Every key of a line of ``durable logs --json``, in order.
KEYS = ["object_id", "object", "seq", "id", "line", "logged_at", "level", "levelno"]
KEYS += ["logger", "message"]


async def test_logs_as_a_table_as_json_and_by_range(
    database_url: str, sql: asyncpg.Connection
) -> None:
    env = child_env(database_url=database_url)
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/journal/k?who=ada")
        for text in ("hello", "raise", "caught", "bye"):
            await ws.send_str(text)
        for text in ("hello", "caught", "bye"):
            assert await ws.receive_str(timeout=5) == f"ack {text}"
        await ws.close()
    stored = await lines_of(sql, "k")
    object_id = await sql.fetchval("SELECT object_id FROM objects WHERE name = 'k'")
    received = await seqs_of(sql, "k", "message_received")
    clock = await sql.fetchval(
        "SELECT logged_at FROM object_logs AS l WHERE l.object_id = $1 AND l.message = $2",
        object_id,
        "ada said caught",
    )
    window = ("--since", str(received[1]), "--until", str(received[2]))
    table, as_json, ranged, timed, unknown, follow_until = await asyncio.gather(
        run("logs", "JOURNAL/k", env=env),
        run("logs", "JOURNAL/k", "--json", env=env),
        run("logs", object_id, "--json", *window, env=env),
        run("logs", "JOURNAL/k", "--json", "--since", clock.isoformat(), env=env),
        run("logs", "JOURNAL/nowhere", env=env),
        run("logs", "JOURNAL/k", "--follow", "--until", "3", env=env),
    )

    assert table.code == 0, table.stderr
    head, *rows = table.stdout.splitlines()
    assert head.split() == ["seq", "time", "level", "logger", "message"]
    said = [row for row in rows if "ada said" in row]
    assert len(said) == 4 and all(" INFO " in row and " journal " in row for row in said)
    assert any("ERROR" in row and "service.runtime.dispatch" in row for row in rows)
    assert any("ValueError: bad message" in row for row in rows)

    assert as_json.code == 0, as_json.stderr
    shapes = as_json.json_lines()
    assert all(list(shape) == KEYS for shape in shapes)
    printed = [
        (s["seq"], s["id"], s["line"], s["levelno"], s["logger"], s["message"]) for s in shapes
    ]
    assert printed == [
        (line.seq, line.id, line.line, line.level, line.logger, line.message) for line in stored
    ]
    assert {s["object"] for s in shapes} == {"JOURNAL/k"}
    assert {s["object_id"] for s in shapes} == {object_id}
    assert [s["level"] for s in shapes if s["logger"] == "service.runtime.dispatch"] == ["ERROR"]

    # The turns of the second and third messages: the failed one and the caught exception.
    assert ranged.code == 0, ranged.stderr
    assert {s["seq"] for s in ranged.json_lines()} == {received[1], received[2]}
    assert [s["message"].splitlines()[0] for s in ranged.json_lines()] == [
        "ada said raise",
        "about to raise",
        "handler Journal.websocket_message raised",
        "ada said caught",
        "lookup failed",
    ]

    assert timed.code == 0, timed.stderr
    assert [s["message"].splitlines()[0] for s in timed.json_lines()][:1] == ["ada said caught"]
    assert "ada said hello" not in timed.stdout

    assert (unknown.code, unknown.stdout) == (1, "")
    assert unknown.stderr.strip().splitlines()[-1] == (
        "error: no object of binding JOURNAL is named 'nowhere'"
    )
    assert follow_until.code == 1
    assert "--follow reads on past the end: it takes no --until" in follow_until.stderr

    later = clock + timedelta(days=1)
    empty = await run("logs", "JOURNAL/k", "--since", later.isoformat(), env=env)
    assert (empty.code, empty.stdout) == (0, "")
    assert "no log lines of JOURNAL/k in that range" in empty.stderr


async def test_follow_prints_every_line_once_in_order_as_turns_commit(
    database_url: str, sql: asyncpg.Connection
) -> None:
    env = child_env(database_url=database_url)
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/journal/m?who=ada")
        await ws.send_str("before")
        assert await ws.receive_str(timeout=5) == "ack before"
        args = ("logs", "JOURNAL/m", "--follow", "--json", "--poll", "0.02")
        async with durable(*args, env=env) as follower:
            await follower.wait_for(r"following the log of JOURNAL/m", timeout=30)
            assert any("ada said before" in line for line in follower.lines)
            # Many turns, committed while it reads: each line shows once, in commit order.
            for n in range(30):
                await ws.send_str(f"m{n}")
            for n in range(30):
                assert await ws.receive_str(timeout=5) == f"ack m{n}"
            await follower.wait_for(r"ada said m29", timeout=30)
            await asyncio.sleep(0.2)  # a line printed twice would show by now
            printed = [json.loads(line) for line in follower.lines if line.startswith("{")]
        await ws.close()
    stored = await lines_of(sql, "m")
    assert [(p["seq"], p["id"]) for p in printed] == [(s.seq, s.id) for s in stored[: len(printed)]]
    assert [p["message"] for p in printed][-30:] == [f"ada said m{n}" for n in range(30)]
