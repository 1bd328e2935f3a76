"""The presence example's protocol, over real WebSocket clients (no browser needed)."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest

from tests.examples.support import receive, send, serve_example
from tests.support import eventually


async def test_upgrade_and_user_id_are_required(database_url):
    async with serve_example(database_url, "presence") as node:
        response = await node.client.get("/presence/office?userId=ann")
        assert response.status == 426
        assert await response.text() == "Expected WebSocket upgrade"
        with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
            await node.client.ws_connect("/presence/office")
        assert raised.value.status == 400


async def test_join_status_leave(database_url):
    async with serve_example(database_url, "presence") as node:
        ann = await node.client.ws_connect("/presence/office?userId=ann")
        assert await receive(ann) == {
            "type": "presence",
            "users": [{"userId": "ann", "status": "online"}],
        }
        assert (await receive(ann))["type"] == "join"

        ben = await node.client.ws_connect("/presence/office?userId=ben")
        both = [{"userId": "ann", "status": "online"}, {"userId": "ben", "status": "online"}]
        assert await receive(ben) == {"type": "presence", "users": both}
        joined = {"type": "join", "userId": "ben", "status": "online", "users": both}
        assert await receive(ben) == joined
        assert await receive(ann) == joined

        await send(ben, type="status", status="away")
        users = [{"userId": "ann", "status": "online"}, {"userId": "ben", "status": "away"}]
        changed = {"type": "status", "userId": "ben", "status": "away", "users": users}
        assert await receive(ann) == changed
        assert await receive(ben) == changed

        await ben.close()
        left = {"type": "leave", "userId": "ben", "users": [{"userId": "ann", "status": "online"}]}
        assert await receive(ann) == left
        await ann.close()


async def test_bad_status_is_refused_to_its_sender_only(database_url):
    async with serve_example(database_url, "presence") as node:
        ann = await node.client.ws_connect("/presence/office?userId=ann")
        await receive(ann)
        await receive(ann)
        for bad in ('{"type": "status", "status": ""}', '{"type": "status"}', "away"):
            await ann.send_str(bad)
            assert (await receive(ann))["type"] == "error"
        await send(ann, type="status", status="x" * 65)
        assert (await receive(ann))["type"] == "error"
        await ann.close()


async def test_a_second_tab_shares_the_status_and_leaves_quietly(database_url):
    async with serve_example(database_url, "presence") as node:
        ann = await node.client.ws_connect("/presence/office?userId=ann")
        ben = await node.client.ws_connect("/presence/office?userId=ben")
        await send(ben, type="status", status="busy")
        while (await receive(ann)).get("type") != "status":
            pass
        ben_again = await node.client.ws_connect("/presence/office?userId=ben")
        listed = await receive(ben_again)
        assert {"userId": "ben", "status": "busy"} in listed["users"]
        assert len(listed["users"]) == 2

        await ben_again.close()
        await ben.close()
        frame = await receive(ann)
        # Only the last tab's close announces that ben left.
        assert frame == {
            "type": "leave",
            "userId": "ben",
            "users": [{"userId": "ann", "status": "online"}],
        }
        await ann.close()


async def test_statuses_survive_hibernation_and_are_visible_in_sql(database_url):
    async with serve_example(database_url, "presence", hibernate_after=0.2) as node:
        ann = await node.client.ws_connect("/presence/office?userId=ann")
        await send(ann, type="status", status="writing tests")
        while (await receive(ann)).get("type") != "status":
            pass
        await eventually(lambda: not node.runtime.activations, timeout=5)

        ben = await node.client.ws_connect("/presence/office?userId=ben")
        listed = await receive(ben)
        assert listed["users"][0] == {"userId": "ann", "status": "writing tests"}

        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT attachment FROM presence WHERE 'user:ann' = ANY(tags)"
            )
        finally:
            await connection.close()
        assert len(rows) == 1 and "writing tests" in rows[0]["attachment"]
        await ann.close()
        await ben.close()
