"""Changes through the admin API: a fork, only with --admin-write, recorded as the fork's
first event with who made it, which ``durable events`` shows like any other event."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from service.admin import shapes
from tests.admin.support import admin_node, get, post, ref
from tests.cli.process import child_env
from tests.examples.support import receive_type
from tests.history_cli.support import run


async def talk(url: str, session: aiohttp.ClientSession, *texts: str) -> None:
    """ada joins CHAT/lobby and says ``texts``, each echoed back (committed)."""
    ws = await session.ws_connect(f"{url}/chat/lobby?username=ada")
    await receive_type(ws, "history")
    for text in texts:
        await ws.send_str(json.dumps({"type": "message", "text": text}))
        while (await receive_type(ws, "message"))["text"] != text:
            pass
    await ws.close()


async def seq_of_message(session: aiohttp.ClientSession, base: str, text: str) -> int:
    events = await get(session, f"{base}/objects/{ref('CHAT/lobby')}/events")
    (said,) = [e for e in events.body["events"] if text in e["text"] and e["type"] == "storage_put"]
    seq: int = said["seq"]
    return seq


async def test_a_fork_is_made_recorded_with_its_maker_and_reachable_by_name(
    database_url: str,
) -> None:
    async with (
        admin_node(database_url, admin_write=True) as (url, _),
        aiohttp.ClientSession() as session,
    ):
        base = f"{url}/admin/api"
        await talk(url, session, "before the fork", "after the fork")
        at = await seq_of_message(session, base, "before the fork")
        made = await post(
            session, f"{base}/objects/{ref('CHAT/lobby')}/fork", {"at": at, "as": "copy"}
        )
        assert made.status == 201, made.body
        forked = shapes.ForkedShape.model_validate(made.body)
        assert (forked.binding, forked.name, forked.seq) == ("CHAT", "copy", at)
        assert forked.source.name == "lobby"
        assert forked.by == "admin-api from 127.0.0.1"

        # Its first event says where it came from and who made it, in the API...
        events = await get(session, f"{base}/objects/{ref('CHAT/copy')}/events")
        (first,) = events.body["events"]
        assert first["type"] == "object_forked" and first["data"]["by"] == forked.by
        assert first["text"] == f"forked from CHAT/lobby at seq {at} by admin-api from 127.0.0.1"
        # ...and in durable events, readably.
        printed = await run("events", "CHAT/copy", env=child_env(database_url=database_url))
        assert printed.code == 0, printed.stderr
        assert printed.stdout.rstrip().endswith(
            f"object_forked  forked from CHAT/lobby at seq {at} by admin-api from 127.0.0.1"
        )
        # Its state is the source's at that seq (storage), and clients reach it by name.
        source = await get(session, f"{base}/objects/{ref('CHAT/lobby')}/state", {"at": str(at)})
        copy = await get(session, f"{base}/objects/{ref('CHAT/copy')}/state")
        assert copy.body["storage"] == source.body["storage"]
        ws = await session.ws_connect(f"{url}/chat/copy?username=bo")
        history = await receive_type(ws, "history")
        await ws.close()
        assert [m["text"] for m in history["messages"]] == ["before the fork"]

        again = await post(
            session, f"{base}/objects/{ref('CHAT/lobby')}/fork", {"at": 1, "as": "copy"}
        )
        assert again.status == 409
        assert "exists already" in again.body["error"]


async def test_the_operator_named_in_the_settings_is_recorded(database_url: str) -> None:
    async with (
        admin_node(database_url, admin_write=True, admin_operator="grace") as (url, _),
        aiohttp.ClientSession() as session,
    ):
        await talk(url, session, "hello")
        made = await post(
            session, f"{url}/admin/api/objects/{ref('CHAT/lobby')}/fork", {"at": "now", "as": "b"}
        )
        assert made.status == 201, made.body
        assert made.body["by"] == "grace (admin-api from 127.0.0.1)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"as": "x"}, "at is required: a seq"),
        ({"at": True, "as": "x"}, "at is required: a seq"),
        ({"at": 1}, "as is required: the fork's name"),
        ({"at": 1, "as": ""}, "as is required: the fork's name"),
        ({"at": 1, "as": "x", "by": "me"}, "unknown field 'by': a fork takes at and as"),
        ({"at": "soon", "as": "x"}, "at 'soon' is neither a seq nor an ISO 8601 time"),
        ({"at": 999, "as": "x"}, "CHAT/lobby has events 1 to"),
        ([1, 2], "the body must be a JSON object"),
    ],
)
async def test_a_bad_fork_is_a_400_saying_what_to_give(
    database_url: str, body: Any, message: str
) -> None:
    async with (
        admin_node(database_url, admin_write=True) as (url, _),
        aiohttp.ClientSession() as session,
    ):
        await talk(url, session, "hello")
        answer = await post(session, f"{url}/admin/api/objects/{ref('CHAT/lobby')}/fork", body)
        assert answer.status == 400, answer.body
        assert answer.body["error"].startswith(message)
        objects = await get(session, f"{url}/admin/api/objects")
        assert [o["label"] for o in objects.body["objects"]] == ["CHAT/lobby"]
