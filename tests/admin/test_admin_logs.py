"""``GET /admin/api/objects/{ref}/logs``: an object's log lines with ``durable logs --json``'s
shape, a page at a time, by seq range (so a page of events and the lines of their turns are
asked for alike), its parameters checked as every endpoint's, behind the same token."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg

from service.admin import shapes
from tests.admin.support import admin_node, get, ref
from tests.cli.process import child_env
from tests.history_cli.support import run
from tests.object_logs.journal import app
from tests.object_logs.support import seqs_of

TOKEN = "a-token-of-the-logs-tests"


async def _chatter(url: str, session: aiohttp.ClientSession, name: str) -> None:
    """A client of JOURNAL/``name`` says a few things, one of them failing."""
    ws = await session.ws_connect(f"{url}/journal/{name}?who=ada")
    for text in ("hello", "raise", "caught", "noisy 3 10", "bye"):
        await ws.send_str(text)
    for text in ("hello", "caught", "noisy 3 10", "bye"):
        assert await ws.receive_str(timeout=5) == f"ack {text}"
    await ws.close()


async def test_logs_page_through_what_durable_logs_prints_and_by_seq_range(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        admin_node(database_url, application=app) as (url, _),
        aiohttp.ClientSession() as session,
    ):
        await _chatter(url, session, "n")
        endpoint = f"{url}/admin/api/objects/{ref('JOURNAL/n')}/logs"
        command = await run("logs", "JOURNAL/n", "--json", env=child_env(database_url=database_url))
        assert command.code == 0, command.stderr
        whole = command.json_lines()
        assert len(whole) > 10

        paged: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"limit": "4"} | ({} if cursor is None else {"cursor": cursor})
            answer = await get(session, endpoint, params)
            assert answer.status == 200, answer.body
            page = shapes.LogPageShape.model_validate(answer.body)
            assert page.object.label == "JOURNAL/n" and len(page.logs) <= 4
            paged += answer.body["logs"]
            cursor = answer.body["cursor"]
            if cursor is None:
                break
        # Later lines may have come (the close's): the command's are the first.
        assert paged[: len(whole)] == whole

        # The lines of the turns of some events, asked for as the events are.
        received = await seqs_of(sql, "n", "message_received")
        window = {"since": str(received[1]), "until": str(received[3])}
        events = await get(session, endpoint.removesuffix("/logs") + "/events", window)
        lines = await get(session, endpoint, window)
        assert lines.status == 200, lines.body
        seqs = {e["seq"] for e in events.body["events"]}
        assert {line["seq"] for line in lines.body["logs"]} == {*received[1:4]} <= seqs
        assert lines.body["logs"] == [
            line for line in whole if received[1] <= line["seq"] <= received[3]
        ]
        assert lines.body["cursor"] is None


async def test_a_bad_parameter_is_a_400_an_unknown_object_a_404(database_url: str) -> None:
    async with (
        admin_node(database_url, application=app) as (url, _),
        aiohttp.ClientSession() as session,
    ):
        await _chatter(url, session, "p")
        endpoint = f"{url}/admin/api/objects/{ref('JOURNAL/p')}/logs"
        cases = [
            ({"limit": "0"}, "limit must be at least 1, not 0"),
            ({"limit": "1001"}, "limit must be at most 1000, not 1001"),
            ({"cursor": "12"}, "cursor '12' is not one this API gave: use a page's cursor"),
            ({"cursor": "1:x"}, "cursor '1:x' is not one this API gave"),
            ({"since": "yesterday"}, "since 'yesterday' is neither a seq nor an ISO 8601 time"),
            ({"until": "2026-12-07T18:00:00"}, "until '2026-12-07T18:00:00' has no time zone"),
            ({"type": "x"}, "unknown parameter 'type': this endpoint takes cursor, limit, since"),
        ]
        for params, message in cases:
            answer = await get(session, endpoint, params)
            assert answer.status == 400, (params, answer.body)
            assert shapes.ErrorShape.model_validate(answer.body).error.startswith(message)
        unknown = await get(session, f"{url}/admin/api/objects/{ref('JOURNAL/nowhere')}/logs")
        assert unknown.status == 404
        assert unknown.body == {"error": "no object of binding JOURNAL is named 'nowhere'"}


async def test_the_logs_are_behind_the_token_like_everything_else(database_url: str) -> None:
    async with (
        admin_node(database_url, application=app, admin_token=TOKEN) as (url, _),
        aiohttp.ClientSession() as session,
    ):
        await _chatter(url, session, "q")
        endpoint = f"{url}/admin/api/objects/{ref('JOURNAL/q')}/logs"
        refused = await get(session, endpoint)
        assert (refused.status, refused.body) == (401, {"error": "unauthorized"})
        served = await get(session, endpoint, Authorization=f"Bearer {TOKEN}")
        assert served.status == 200
        assert [line["message"] for line in served.body["logs"]][:2] == [
            "constructed with 0 keys",
            "ada joined",
        ]
