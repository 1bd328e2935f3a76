"""An object's events by seq or time range and by type, a page at a time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service.events import types
from service.ports.history import HistoryService
from tests.store.helpers import Stores, after, object_id, put, puts


async def _seqs(history: HistoryService, ref: str, **options: Any) -> list[list[int]]:
    """The seqs of every page, following the cursor to the end (from ``after``, if given)."""
    pages: list[list[int]] = []
    cursor = options.pop("after", None)
    while True:
        page = await history.events(ref, after=cursor, **options)
        pages.append([e.seq for e in page.events])
        if page.cursor is None:
            return pages
        assert page.cursor == page.events[-1].seq
        cursor = page.cursor


async def test_events_come_by_seq_range_a_page_at_a_time(
    history: HistoryService, stores: Stores
) -> None:
    store = await stores.open("node-a")
    claim = await store.claim(object_id("room"), "CHAT", "room")
    await store.append(after(claim, 0, puts(10)))
    other = await store.claim(object_id("other"), "CHAT", "other")
    await store.append(after(other, 0, puts(4)))

    page = await history.events("CHAT/room")
    assert [e.seq for e in page.events] == list(range(1, 11)) and page.cursor is None
    first = page.events[0]
    assert first.object_id == claim.object_id and first.event == put("k0", 0)
    assert [e.position for e in page.events] == sorted(e.position for e in page.events)

    assert await _seqs(history, "CHAT/room", limit=4) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert await _seqs(history, "CHAT/room", limit=5) == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    assert await _seqs(history, "CHAT/room", since=3, until=8, limit=3) == [[3, 4, 5], [6, 7, 8]]
    assert await _seqs(history, "CHAT/room", since=11) == [[]]
    assert await _seqs(history, "CHAT/other", until=2) == [[1, 2]]
    with pytest.raises(ValueError, match="at least one event"):
        await history.events("CHAT/room", limit=0)


async def test_events_come_newest_first_a_page_at_a_time_below_the_cursor(
    history: HistoryService, stores: Stores
) -> None:
    store = await stores.open("node-a")
    claim = await store.claim(object_id("room"), "CHAT", "room")
    await store.append(after(claim, 0, puts(10)))
    other = await store.claim(object_id("other"), "CHAT", "other")
    await store.append(after(other, 0, puts(4)))

    newest = await history.events("CHAT/room", descending=True)
    assert [e.seq for e in newest.events] == list(range(10, 0, -1)) and newest.cursor is None
    assert newest.events[-1].event == put("k0", 0)

    pages = await _seqs(history, "CHAT/room", limit=4, descending=True)
    assert pages == [[10, 9, 8, 7], [6, 5, 4, 3], [2, 1]]
    # The cursor a page ended with, newest first: the page just below it.
    assert await _seqs(history, "CHAT/room", after=5, descending=True) == [[4, 3, 2, 1]]
    # A range, newest first: from its top down to its bottom.
    bounded = await _seqs(history, "CHAT/room", since=3, until=8, limit=4, descending=True)
    assert bounded == [[8, 7, 6, 5], [4, 3]]
    assert await _seqs(history, "CHAT/room", until=2, descending=True) == [[2, 1]]
    assert await _seqs(history, "CHAT/room", since=11, descending=True) == [[]]
    assert await _seqs(history, "CHAT/room", after=1, descending=True) == [[]]
    assert await _seqs(history, "CHAT/other", descending=True) == [[4, 3, 2, 1]]


async def test_events_come_by_time_range_and_by_type(
    history: HistoryService, stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open("node-a")
    claim = await store.claim(object_id("room"), "CHAT", "room")
    await store.append(after(claim, 0, [put("a"), types.MessageReceived(socket_id="s", text="hi")]))
    await store.append(after(claim, 2, [put("b")]))
    await store.append(after(claim, 3, [types.MessageReceived(socket_id="s", text="yo"), put("c")]))
    # Spread the three commits over three days, as a long-lived object's would be.
    start = datetime.fromisoformat("2026-01-01T12:00:00+00:00")
    await sql.execute(
        "UPDATE events SET recorded_at = $1::timestamptz + (seq / 2) * interval '1 day'"
        " WHERE object_id = $2",
        start,
        claim.object_id,
    )
    day = timedelta(days=1)
    logged = (await history.events("CHAT/room")).events
    assert [e.recorded_at for e in logged] == [
        start,
        start + day,
        start + day,
        start + 2 * day,
        start + 2 * day,
    ]

    assert await _seqs(history, "CHAT/room", since=start + day) == [[2, 3, 4, 5]]
    assert await _seqs(history, "CHAT/room", until=start + day) == [[1, 2, 3]]
    assert await _seqs(history, "CHAT/room", since=start + day, until=start + day) == [[2, 3]]
    assert await _seqs(history, "CHAT/room", since=start + day / 2, until=start + day / 2) == [[]]
    assert await _seqs(history, "CHAT/room", types=["message_received"]) == [[2, 4]]
    assert await _seqs(history, "CHAT/room", types=["storage_put"], limit=2) == [[1, 3], [5]]
    assert await _seqs(history, "CHAT/room", types=["storage_put"], since=2, until=start + day) == [
        [3]
    ]
    assert await _seqs(history, "CHAT/room", types=["alarm_set"]) == [[]]
    assert await _seqs(history, "CHAT/room", since=start + day, descending=True, limit=3) == [
        [5, 4, 3],
        [2],
    ]
    assert await _seqs(
        history, "CHAT/room", types=["message_received"], until=start + day, descending=True
    ) == [[2]]
    with pytest.raises(ValueError, match="has no time zone"):
        await history.events("CHAT/room", since=datetime(2026, 1, 1))
