"""Finding an object by ``BINDING/NAME`` or by id, and the errors for one that is not there."""

from __future__ import annotations

import asyncpg
import pytest

from service.history.service import LogHistory
from service.ports.errors import StoreUnavailableError
from service.ports.history import AmbiguousObjectError, HistoryService, UnknownObjectError
from service.store.history_store import HistoryStore
from tests.store.helpers import Stores, after, object_id, puts


async def test_an_object_is_found_by_name_and_by_id(
    history: HistoryService, stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open("node-a")
    claim = await store.claim(object_id("lobby"), "CHAT", "lobby/main")
    await store.append(after(claim, 0, puts(3)))
    await sql.execute(
        "INSERT INTO websockets (object_id, socket_id, node) VALUES ($1, 's1', 'node-a'),"
        " ($1, 's2', 'node-a')",
        claim.object_id,
    )
    await sql.execute("UPDATE websockets SET closed_at = now() WHERE socket_id = 's2'")

    by_name = await history.find("CHAT/lobby/main")
    assert by_name == await history.find(claim.object_id)
    assert by_name == await history.find(claim.object_id.upper())
    assert (by_name.object_id, by_name.binding, by_name.name) == (
        claim.object_id,
        "CHAT",
        "lobby/main",
    )
    assert (by_name.last_seq, by_name.open_sockets) == (3, 1)
    assert by_name.owner_node == "node-a" and by_name.live

    await store.release(claim.object_id, claim.epoch)
    released = await history.find("CHAT/lobby/main")
    assert released.owner_node is None and not released.live
    assert released.last_activity >= by_name.created_at


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (object_id("nobody"), f"no object has the id {object_id('nobody')}"),
        ("CHAT/nobody", "no object of binding CHAT is named 'nobody'"),
        ("GAME/lobby", "no object of binding GAME is named 'lobby'"),
        ("lobby", "'lobby' names no object: give BINDING/NAME (e.g. CHAT/lobby) or a 64-hex id"),
        ("CHAT/", "'CHAT/' names no object"),
        ("/lobby", "'/lobby' names no object"),
        ("abc123", "'abc123' names no object"),
    ],
)
async def test_an_unknown_or_malformed_reference_says_so(
    history: HistoryService, stores: Stores, ref: str, message: str
) -> None:
    store = await stores.open("node-a")
    await store.claim(object_id("lobby"), "CHAT", "lobby")
    with pytest.raises(UnknownObjectError) as raised:
        await history.find(ref)
    assert str(raised.value).startswith(message)
    # Every method resolves its object the same way.
    with pytest.raises(UnknownObjectError):
        await history.events(ref)
    with pytest.raises(UnknownObjectError):
        await history.state(ref)


async def test_a_name_of_two_objects_asks_for_the_id(
    history: HistoryService, stores: Stores
) -> None:
    store = await stores.open("node-a")
    first = await store.claim(object_id("one"), "CHAT", "lobby")
    second = await store.claim(object_id("two"), "CHAT", "lobby")
    with pytest.raises(AmbiguousObjectError, match="give the id") as raised:
        await history.find("CHAT/lobby")
    assert first.object_id in str(raised.value) and second.object_id in str(raised.value)
    assert (await history.find(second.object_id)).name == "lobby"


async def test_a_database_away_is_an_outage_not_an_unknown_object() -> None:
    store = HistoryStore("postgresql://postgres@127.0.0.1:1/postgres", acquire_timeout=2)
    await store.open()
    try:
        with pytest.raises(StoreUnavailableError):
            await LogHistory(store).find("CHAT/lobby")
        with pytest.raises(StoreUnavailableError):
            await LogHistory(store).tail()
    finally:
        await store.close()
