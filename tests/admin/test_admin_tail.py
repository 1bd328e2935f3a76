"""Live tails over Server-Sent Events: a message a client sends arrives; a tail resumed from
the last id it got (Last-Event-ID, or from) goes on with the next event, with no gap and
no repeat; the node's shutdown ends open tails."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import pytest

from tests.admin.support import Message, Stream, admin_node, get, ref, tail
from tests.cli.process import database_of, with_database
from tests.examples.support import receive_type
from tests.history_cli.support import Chat, run

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOBBY = ref("CHAT/lobby")


def api(chat: Chat, path: str) -> str:
    return f"{chat.node.url}/admin/api{path}"


async def positions(chat: Chat) -> list[int]:
    """Every event's position, from the table itself."""
    return [r["position"] for r in await chat.sql("SELECT position FROM events ORDER BY 1")]


async def until_said(stream_events: list[Message], text: str) -> None:
    assert any(
        m.data["type"] == "message_received" and text in m.data["text"] for m in stream_events
    ), [m.data["text"] for m in stream_events]


async def test_the_tail_of_every_object_shows_what_a_client_sends(chat: Chat) -> None:
    async with tail(chat.session, api(chat, "/tail")) as stream:
        assert stream.start is not None
        # What has settled: no later than the newest position (a transaction still open
        # may hold it back, and then the tail starts before what it might still commit).
        assert stream.start.data["after"] <= max(await positions(chat))
        await chat.say("bob", "seen live")
        got: list[Message] = []
        while not any("seen live" in m.data["text"] for m in got):
            got += await stream.events(1)
    (said,) = [m.data for m in got if m.data["type"] == "message_received" and m is got[-1]]
    assert (said["object"], said["sender"]) == ("CHAT/lobby", "bob")
    assert said["text"] == 'sent {"type": "message", "text": "seen live"}'
    # Ids are positions: every event committed after the start, in order.
    after = [p for p in await positions(chat) if p > stream.start.data["after"]]
    assert [int(m.id or 0) for m in got] == [m.data["position"] for m in got] == after[: len(got)]
    # What it sent is what durable events prints of the same events.
    lobby = [m for m in got if m.data["object"] == "CHAT/lobby"]
    seqs = [m.data["seq"] for m in lobby]
    printed = await run(
        "events", "CHAT/lobby", "--since", str(seqs[0]), "--until", str(seqs[-1]), "--json",
        env=chat.env,
    )  # fmt: skip
    assert [m.data for m in lobby] == printed.json_lines()


async def test_the_tail_resumes_after_the_last_id_without_a_gap_or_a_repeat(chat: Chat) -> None:
    everything = await positions(chat)
    async with tail(chat.session, api(chat, "/tail?from=0")) as stream:
        assert stream.start is not None and stream.start.id == "0"
        first = await stream.events(5)
    assert [int(m.id or 0) for m in first] == everything[:5]
    last = first[-1].id or ""

    # Gone a while: meanwhile a client talks.
    await chat.say("alice", "while you were away")
    everything = await positions(chat)
    async with tail(chat.session, api(chat, "/tail?from=0"), **{"Last-Event-ID": last}) as again:
        assert again.start is not None and again.start.id == last
        rest = await again.events(len(everything) - 5)
    assert [int(m.id or 0) for m in rest] == everything[5:]
    await until_said(rest, "while you were away")

    # from= resumes the same way.
    async with tail(chat.session, api(chat, f"/tail?from={last}")) as same:
        assert [m.data for m in await same.events(3)] == [m.data for m in rest[:3]]


async def test_a_tail_that_saw_nothing_resumes_from_where_it_started(chat: Chat) -> None:
    """Its first message's id is its start: an EventSource that reconnects before any
    event sends that id, and so misses nothing that committed in between."""
    async with tail(chat.session, api(chat, "/tail")) as stream:
        assert stream.start is not None
        started = stream.start.id or ""
    await chat.say("bob", "in between")
    after = [p for p in await positions(chat) if p > int(started)]
    async with tail(chat.session, api(chat, "/tail"), **{"Last-Event-ID": started}) as again:
        got = await again.events(len(after))
    assert [int(m.id or 0) for m in got] == after
    await until_said(got, "in between")


async def test_one_object_is_tailed_by_seq_and_resumed_by_seq(chat: Chat) -> None:
    lobby = (await get(chat.session, api(chat, f"/objects/{LOBBY}"))).body
    async with tail(chat.session, api(chat, f"/objects/{LOBBY}/tail")) as stream:
        assert stream.start is not None and stream.start.id == str(lobby["last_seq"])
        # Another room's events are not this tail's.
        kitchen = await chat.session.ws_connect(f"{chat.node.url}/chat/kitchen?username=eve")
        await receive_type(kitchen, "join")
        await chat.say("alice", "only the lobby")
        got: list[Message] = []
        while not any(m.data["type"] == "message_received" for m in got):
            got += await stream.events(1)
        await kitchen.close()
    assert {m.data["object"] for m in got} == {"CHAT/lobby"}
    assert [int(m.id or 0) for m in got] == [m.data["seq"] for m in got]
    assert [m.data["seq"] for m in got] == list(
        range(lobby["last_seq"] + 1, got[-1].data["seq"] + 1)
    )
    await until_said(got, "only the lobby")

    middle = got[0].id or ""
    async with tail(
        chat.session, api(chat, f"/objects/{LOBBY}/tail?from=0"), **{"Last-Event-ID": middle}
    ) as again:
        resumed = await again.events(len(got) - 1)
    assert [m.data for m in resumed] == [m.data for m in got[1:]]
    async with tail(chat.session, api(chat, f"/objects/{LOBBY}/tail?from=0")) as whole:
        assert [m.data["seq"] for m in await whole.events(3)] == [1, 2, 3]


async def test_shutting_the_node_down_ends_open_tails(database_url: str) -> None:
    """The node stops without waiting out its shutdown timeout for a tail that would never
    end by itself, and the tail's client sees its stream end."""
    async with aiohttp.ClientSession() as session:
        node = admin_node(database_url, shutdown_timeout=30)
        url, _ = await node.__aenter__()
        try:
            response = await session.get(f"{url}/admin/api/tail")
            start = await Stream(response).next()
            assert start.event == "ready"
        finally:
            stopping = time.monotonic()
            await node.__aexit__(None, None, None)
        assert time.monotonic() - stopping < 10
        assert await asyncio.wait_for(response.content.read(), 5) == b""
        response.close()


async def test_a_tail_ends_when_the_database_goes_away_and_resumes_after(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its answer has begun, so no status can say it: the stream ends, and the client
    comes back with the last id it got."""
    name = database_of(database_url)
    # From another database: a session cannot bar connections to its own.
    sql = await asyncpg.connect(with_database(database_url, "postgres"))
    async with (
        admin_node(database_url) as (url, _),
        aiohttp.ClientSession() as session,
        tail(session, f"{url}/admin/api/tail?from=0") as stream,
    ):
        assert stream.start is not None
        await sql.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await sql.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = 'durable history'",
                name,
            )
            assert await asyncio.wait_for(stream.response.content.read(), 20) == b""
            assert "a tail ends, the database did not answer" in caplog.text
        finally:
            await sql.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await sql.close()
        async with tail(session, f"{url}/admin/api/tail", **{"Last-Event-ID": "0"}) as again:
            assert again.start is not None and again.start.id == "0"
