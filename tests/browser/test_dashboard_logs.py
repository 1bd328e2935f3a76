"""What an object's code logged, in the dashboard's timeline (headless Chromium): each line
under the event its turn ended at, a warning highlighted, hidden and shown again by a
toggle; a page's lines read with one request, or in several when they are more than one
answer holds, up to five before the page asks to read on.

The timeline with the chat room's lines is saved as ``build/screenshots/dashboard-timeline-
logs.png``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.admin.support import admin_node, ref
from tests.browser.dashboard_checks import (
    capture,
    lines_shown,
    only_its_own,
    open_page,
)
from tests.browser.dashboard_tour import LOBBY, TYPING, Room, dashboard
from tests.examples.support import TIMEOUT
from tests.object_logs import journal

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("chat_logs")]

#: A row of the timeline as ``rows`` names it: an event's seq, or a line's level and message.
ROWS = """rows => rows.map(row => row.dataset.seq
  ?? `${row.cells[2].textContent} ${row.cells[4].textContent}`)"""


async def events_of(session: aiohttp.ClientSession, base: str, label: str) -> list[dict[str, Any]]:
    """Every event of an object (a short log), from the admin API, newest first."""
    url = f"{base}/admin/api/objects/{ref(label)}/events"
    async with session.get(url, params={"order": "desc", "limit": "1000"}) as response:
        answer = await response.json()
    assert answer["cursor"] is None
    events: list[dict[str, Any]] = answer["events"]
    return events


async def all_lines(session: aiohttp.ClientSession, base: str, label: str) -> list[dict[str, Any]]:
    """Every line of an object, from the admin API, in the order they committed."""
    url = f"{base}/admin/api/objects/{ref(label)}/logs"
    lines: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "1000"} | ({} if cursor is None else {"cursor": cursor})
        async with session.get(url, params=params) as response:
            answer = await response.json()
        lines += answer["logs"]
        cursor = answer["cursor"]
        if cursor is None:
            return lines


def newest_first(lines: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(seq, message) of lines as the timeline shows them: newest seq first, each seq's in
    their order."""
    return sorted(((line["seq"], line["message"]) for line in lines), key=lambda line: -line[0])


def log_requests(network: Any) -> list[str]:
    return [url for url in network.requested if "/logs?" in url]


async def background(page: Any, selector: str) -> str:
    """The background colour of the first cell of what ``selector`` finds."""
    color: str = await page.eval_on_selector(
        selector, "row => getComputedStyle(row.cells[0]).backgroundColor"
    )
    return color


async def test_a_message_s_line_shows_under_its_turn_a_warning_stands_out_and_logs_hide(
    database_url: str, new_page: Any
) -> None:
    async with admin_node(database_url) as (base, _), aiohttp.ClientSession() as session:
        room = Room(base, session)
        try:
            await room.join("alice")
            await room.join("bob")
            await room.say("alice", "hello logs")
            await room.refused("bob", TYPING)
            events = await events_of(session, base, "CHAT/lobby")
            logged = await all_lines(session, base, "CHAT/lobby")
            lines = [(line["seq"], line["message"]) for line in logged]
            # The message's turn: the frame received, what the room stored, the line it
            # published; its line carries the seq of the last.
            (said,) = [
                e for e in events if e["type"] == "message_received" and "hello" in e["text"]
            ]
            (published,) = [
                e["seq"]
                for e in events
                if e["type"] == "message_published" and e["seq"] > said["seq"]
            ]
            typed = events[0]
            assert typed["type"] == "message_received" and typed["sender"] == "bob"
            assert (published, "message 1 from alice, 10 characters") in lines
            assert (typed["seq"], "refused a frame from bob: not a chat message") in lines

            page, network = await open_page(new_page)
            await page.goto(dashboard(base, f"/object/{LOBBY}/timeline"))
            await expect(page.locator("#timeline-log-count")).to_have_text("(4)")
            assert len(log_requests(network)) == 1
            # Each event, then the lines of the turn that ended at it.
            expected = []
            for event in events:
                expected.append(str(event["seq"]))
                expected += [
                    f"{line['level']} {line['message']}"
                    for line in logged
                    if line["seq"] == event["seq"]
                ]
            rows = await page.eval_on_selector_all("#events tbody tr", ROWS)
            assert rows == expected
            at = rows.index(str(published))
            assert rows[at : at + 5] == [
                str(published),
                "INFO message 1 from alice, 10 characters",
                *(str(seq) for seq in range(published - 1, said["seq"] - 1, -1)),
            ]
            assert rows[:2] == [
                str(typed["seq"]),
                "WARNING refused a frame from bob: not a chat message",
            ]

            # Lines look like no event; a warning stands out from the other lines.
            warning = page.locator("#events tr.log.warning")
            await expect(warning).to_have_count(1)
            await expect(warning.locator(".level")).to_have_text("WARNING")
            info = f'#events tr[data-log-seq="{published}"]'
            event = f'#events tr[data-seq="{published}"]'
            colors = {
                await background(page, event),
                await background(page, info),
                await background(page, "#events tr.log.warning"),
            }
            assert len(colors) == 3, colors
            # A line is a way into time travel too: the state after its turn.
            await warning.click()
            await expect(page.locator("#state")).to_have_attribute("data-seq", str(typed["seq"]))
            await page.locator(event).click()
            await expect(page.locator("#state")).to_have_attribute("data-seq", str(published))
            await capture(page, "timeline-logs")

            # Hidden, they stay hidden when the page is read again, and are not even read.
            await page.uncheck("#timeline-logs")
            await expect(page.locator("#events tr[data-log-seq]:visible")).to_have_count(0)
            await expect(page.locator("#events tr[data-seq]:visible")).to_have_count(len(events))
            assert "logs=0" in page.url
            # (Read again at the event selected: the page of the events up to it.)
            await page.reload()
            await expect(page.locator("#state")).to_have_attribute("data-seq", str(published))
            await expect(page.locator("#timeline-logs")).not_to_be_checked()
            await expect(page.locator("#events tr[data-seq]").first).to_have_attribute(
                "data-seq", str(published)
            )
            assert await page.locator("#events tr[data-log-seq]").count() == 0
            assert len(log_requests(network)) == 1
            await page.check("#timeline-logs")
            await expect(page.locator("#events tr[data-log-seq]:visible")).to_have_count(3)
            await expect(page.locator(info)).to_be_visible()
            assert len(log_requests(network)) == 2
            assert "logs=0" not in page.url

            # Events filtered out: their lines stay where their seq falls, and say it.
            await page.fill("#timeline-types", "message_received")
            await expect(warning).to_be_visible()
            await expect(page.locator("#events tr[data-seq]")).to_have_count(2)
            line = page.locator(info)
            await expect(line.locator("td").first).to_have_text(str(published))
            rows = await page.eval_on_selector_all("#events tbody tr", ROWS)
            assert rows[:4] == [
                str(typed["seq"]),
                "WARNING refused a frame from bob: not a chat message",
                "INFO message 1 from alice, 10 characters",
                str(said["seq"]),
            ]
            only_its_own(network, base)
        finally:
            await room.close()


async def test_a_page_of_more_lines_than_an_answer_is_read_in_pages_then_on_demand(
    database_url: str, new_page: Any
) -> None:
    async with (
        admin_node(database_url, application=journal.app) as (base, _),
        aiohttp.ClientSession() as session,
    ):
        ws = await session.ws_connect(f"{base}/journal/n?who=ada")
        for text in ("noisy 1500 4", "noisy 4000 4"):
            await ws.send_str(text)
            assert await ws.receive_str(timeout=TIMEOUT) == f"ack {text}"
        logged = await all_lines(session, base, "JOURNAL/n")
        # The constructor's (at seq 0: before any event), the join's, and each message's.
        assert len(logged) == 1 + 1 + 1501 + 4001
        assert (logged[0]["seq"], logged[0]["message"]) == (0, "constructed with 0 keys")
        events = await events_of(session, base, "JOURNAL/n")
        (second,) = [e["seq"] for e in events if e["text"].endswith("noisy 4000 4")]

        page, network = await open_page(new_page)
        await page.goto(dashboard(base, f"/object/{ref('JOURNAL/n')}/timeline"))
        # Five answers of a thousand, then a row that reads on, above the lines not read.
        await expect(page.locator("#timeline-log-count")).to_have_text("(5,000+)")
        assert len(log_requests(network)) == 5
        assert await lines_shown(page) == newest_first(logged[:5000])
        more = page.locator("#timeline-more-logs")
        above = await page.eval_on_selector(
            f'#events tr[data-seq="{second}"]', "row => row.previousElementSibling.textContent"
        )
        assert "5,000 log lines of these events read" in above
        # The first line, the constructor's, below every event: it says its seq.
        last = page.locator("#events tbody tr").last
        await expect(last).to_have_attribute("data-log-seq", "0")
        await expect(last.locator("td").first).to_have_text("0")

        await more.click()
        await expect(page.locator("#timeline-log-count")).to_have_text("(5,504)")
        await expect(more).to_have_count(0)
        assert len(log_requests(network)) == 6
        assert await lines_shown(page) == newest_first(logged)
        only_its_own(network, base)
        await ws.close()


async def test_the_lines_of_turns_that_share_a_seq_keep_their_order(
    database_url: str, new_page: Any
) -> None:
    async with (
        admin_node(database_url, application=journal.app) as (base, _),
        aiohttp.ClientSession() as session,
    ):
        # QUIET records no message: each message's turn records no event, and its line
        # carries the seq of the socket's accept.
        ws = await session.ws_connect(f"{base}/quiet/q")
        for text in ("one", "two", "three"):
            await ws.send_str(text)
            assert await ws.receive_str(timeout=TIMEOUT) == f"ack {text}"
        events = await events_of(session, base, "QUIET/q")
        (accepted,) = [e["seq"] for e in events if e["type"] == "websocket_accepted"]

        page, _ = await open_page(new_page)
        await page.goto(dashboard(base, f"/object/{ref('QUIET/q')}/timeline"))
        await expect(page.locator("#timeline-log-count")).to_have_text("(3)")
        rows = await page.eval_on_selector_all("#events tbody tr", ROWS)
        at = rows.index(str(accepted))
        assert rows[at : at + 4] == [
            str(accepted),
            "INFO quietly got one",
            "INFO quietly got two",
            "INFO quietly got three",
        ]
        await ws.close()
