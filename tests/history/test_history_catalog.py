"""The catalog page by page, and presence now and at a time, as the history service gives them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from service.ports.history import HistoryService
from tests.store.helpers import Stores, after, object_id, puts


async def test_the_catalog_pages_in_binding_and_name_order(
    history: HistoryService, stores: Stores
) -> None:
    store = await stores.open("node-a")
    names = [("CHAT", "b"), ("CHAT", "a"), ("GAME", "x"), ("CHAT", None), ("CHAT", "c")]
    for n, (binding, name) in enumerate(names):
        claim = await store.claim(object_id(n), binding, name)
        await store.append(after(claim, 0, puts(n + 1)))
        if binding == "GAME":
            await store.release(claim.object_id, claim.epoch)

    seen, cursor = [], None
    while True:
        page = await history.objects(limit=2, after=cursor)
        seen += [(o.binding, o.name) for o in page.objects]
        if page.cursor is None:
            break
        cursor = page.cursor
    # A name-less object sorts as '' among its binding's.
    assert seen == [("CHAT", None), ("CHAT", "a"), ("CHAT", "b"), ("CHAT", "c"), ("GAME", "x")]
    live = await history.objects(live=True)
    assert {o.binding for o in live.objects} == {"CHAT"} and live.cursor is None
    (game,) = (await history.objects(live=False)).objects
    assert (game.name, game.last_seq, game.live) == ("x", 3, False)
    assert [o.name for o in (await history.objects(binding="CHAT", limit=10)).objects] == [
        None, "a", "b", "c",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="at least one object"):
        await history.objects(limit=0)


async def test_the_catalog_is_searched_by_a_part_of_a_name_in_any_case(
    history: HistoryService, stores: Stores
) -> None:
    store = await stores.open("node-a")
    names = [("CHAT", "Lobby"), ("CHAT", "lobby-2"), ("GAME", "lobby"), ("CHAT", None)]
    names += [("CHAT", "100%_sure"), ("CHAT", "1000 sure"), ("CHAT", "kitchen")]
    for n, (binding, name) in enumerate(names):
        claim = await store.claim(object_id(n), binding, name)
        await store.append(after(claim, 0, puts(1)))

    async def found(text: str, **options: Any) -> list[tuple[str, str | None]]:
        seen, cursor = [], None
        while True:
            page = await history.objects(name=text, limit=1, after=cursor, **options)
            seen += [(o.binding, o.name) for o in page.objects]
            if page.cursor is None:
                return seen
            cursor = page.cursor

    lobbies = [("CHAT", "Lobby"), ("CHAT", "lobby-2"), ("GAME", "lobby")]
    assert await found("LOBBY") == await found("obb") == lobbies
    assert await found("lobby", binding="CHAT") == lobbies[:2]
    # % and _ are only themselves, as any other character.
    assert await found("%_") == [("CHAT", "100%_sure")]
    assert await found("0%") == [("CHAT", "100%_sure")]
    assert await found("_") == [("CHAT", "100%_sure")]
    assert await found("zz") == []
    # A name-less object has no name to hold anything.
    assert (await history.objects(binding="CHAT", limit=10)).objects[0].name is None
    assert None not in {name for _, name in await found("")}


async def test_presence_now_and_at_a_time(
    history: HistoryService, stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open("node-a")
    room = await store.claim(object_id("room"), "CHAT", "room")
    await sql.execute(
        "INSERT INTO websockets (object_id, socket_id, tags, attachment, node, connected_at,"
        " closed_at) VALUES"
        " ($1, 'early', '{user:ann}', '{\"username\": \"ann\"}', 'node-a', now() - interval '2 h',"
        "  now() - interval '1 h'),"
        " ($1, 'late', '{user:bo}', NULL, 'node-a', now() - interval '30 min', NULL)",
        room.object_id,
    )
    now = await history.presence()
    assert [s.socket_id for s in now] == ["late"]
    clock = await sql.fetchval("SELECT now()")
    then = await history.presence(at=clock - timedelta(minutes=90))
    assert [(s.socket_id, s.attachment, s.tags) for s in then] == [
        ("early", {"username": "ann"}, ["user:ann"])
    ]
    assert then[0].closed_at is not None and then[0].binding == "CHAT"
    # Just under an hour ago, ann had left and bo had not come yet.
    assert await history.presence(at=clock - timedelta(minutes=59)) == []
    assert [s.socket_id for s in await history.presence(tag="user:bo", ref="CHAT/room")] == ["late"]
    assert await history.presence(tag="user:ann") == []
    with pytest.raises(ValueError, match="no time zone"):
        await history.presence(at=clock.replace(tzinfo=None))
