"""The admin dashboard in a real headless Chromium, on a chat room real WebSocket clients use:
the room is listed live, a client joining shows in its presence within a second, an old
event shows the state ``durable state --at`` prints for it, the live tail shows what a
client sends, and with a token set the page asks for it and refuses a wrong one.

Each view's screenshot goes to ``build/screenshots`` (dashboard-*.png) for a person to look
at; the timeline's is the README's view (``dashboard_tour.readme_view``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.admin.support import admin_node
from tests.browser.dashboard_checks import (
    capture,
    lines_logged,
    lines_shown,
    only_its_own,
    open_page,
)
from tests.browser.dashboard_tour import (
    LOBBY,
    Room,
    dashboard,
    first_seq,
    readme_view,
    scene,
    show_objects,
    show_presence,
    show_tail,
)
from tests.cli.process import child_env
from tests.history_cli.support import run

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("chat_logs")]

TOKEN = "s3cret-admin-token-0123456789"


async def state_printed(database_url: str, seq: int) -> dict[str, Any]:
    """What ``durable state CHAT/lobby --at SEQ --json`` prints."""
    result = await run(
        "state", "CHAT/lobby", "--at", str(seq), "--json", env=child_env(database_url=database_url)
    )
    assert result.code == 0, result.stderr
    (printed,) = result.json_lines()
    return printed


async def test_a_live_room_is_listed_and_a_client_joining_shows_within_a_second(
    database_url: str, new_page: Any
) -> None:
    async with admin_node(database_url) as (base, _), aiohttp.ClientSession() as session:
        room = Room(base, session)
        try:
            await room.join("alice")
            await room.join("zed", room="kitchen")
            page, network = await open_page(new_page)
            await show_objects(page, base)
            lobby = page.locator('#objects tr[data-object="CHAT/lobby"]')
            await expect(lobby.locator(".badge")).to_have_text("live")
            await expect(lobby.locator(".sockets")).to_have_text("1")
            await expect(page.locator("#objects tr[data-object]")).to_have_count(2)
            # Searched by name (any case, any part of it), then by binding.
            await page.fill("#search-name", "LOB")
            await expect(page.locator("#objects tr[data-object]")).to_have_count(1)
            await expect(lobby).to_be_visible()
            await page.fill("#search-name", "")
            await page.fill("#search-binding", "GAME")
            await expect(page.locator("#objects")).to_contain_text("No object matches.")
            await page.fill("#search-binding", "CHAT")
            await expect(page.locator("#objects tr[data-object]")).to_have_count(2)
            await capture(page, "objects")

            await lobby.locator("a").click()
            await expect(page.locator('#presence tr[data-user="alice"]')).to_be_visible()
            await expect(page.locator("#presence-facts")).to_contain_text("live")
            started = time.monotonic()
            await room.join("bob")
            bob = page.locator('#presence tr[data-user="bob"]')
            await expect(bob).to_be_visible(timeout=1000)
            assert time.monotonic() - started < 1.0
            await expect(page.locator("#presence-count")).to_have_text("2")
            await expect(bob).to_contain_text("user:bob")

            await room.leave("alice")
            await expect(page.locator('#presence tr[data-user="alice"]')).to_have_count(0)
            await expect(page.locator("#presence-count")).to_have_text("1")
            await expect(page.locator("#presence-activity li").first).to_contain_text("alice left")
            await capture(page, "presence")
            only_its_own(network, base)
        finally:
            await room.close()


async def test_an_old_event_shows_the_state_durable_state_prints_for_it(
    database_url: str, new_page: Any
) -> None:
    async with admin_node(database_url) as (base, _), aiohttp.ClientSession() as session:
        room = Room(base, session)
        try:
            await scene(room)
            page, network = await open_page(new_page)
            # The README's view: the timeline, at the event dave's socket was accepted.
            await readme_view(page, room)
            dave = await first_seq(session, base, "websocket_accepted", "dave")
            shown = json.loads(await page.locator("#state-json").text_content())
            assert shown == await state_printed(database_url, dave)
            assert "user:dave" in {tag for s in shown["sockets"] for tag in s["tags"]}
            await expect(page.locator("#state-sockets")).to_contain_text("user:dave")
            await expect(page.locator("#diff-changes")).to_contain_text("socket opened")
            await capture(page, "timeline")

            # A click on an older event: carol's first line, before dave came.
            said = await first_seq(session, base, "message_received", "carol")
            await page.locator(f'#events tr[data-seq="{said}"]').click()
            await expect(page.locator("#state")).to_have_attribute("data-seq", str(said))
            shown = json.loads(await page.locator("#state-json").text_content())
            assert shown == await state_printed(database_url, said)
            assert "user:dave" not in json.dumps(shown["sockets"])
            await expect(page.locator(f'#events tr[data-seq="{said}"]')).to_have_class("selected")
            assert f"seq={said}" in page.url
            only_its_own(network, base)
        finally:
            await room.close()


async def test_the_timeline_pages_back_and_forth_and_the_slider_travels_in_time(
    database_url: str, new_page: Any
) -> None:
    async with admin_node(database_url) as (base, _), aiohttp.ClientSession() as session:
        room = Room(base, session)
        try:
            await scene(room)
            for number in range(30):  # each line is four events: well over a page of 100
                await room.say("bob", f"line {number}")
            async with session.get(f"{base}/admin/api/objects/{LOBBY}") as response:
                last = (await response.json())["last_seq"]
            assert last > 150
            page, _ = await open_page(new_page)
            await page.goto(dashboard(base, f"/object/{LOBBY}/timeline"))
            rows = page.locator("#events tbody tr[data-seq]")
            # It opens at the newest page, newest first.
            await expect(rows).to_have_count(100)
            await expect(rows.first).to_have_attribute("data-seq", str(last))
            await expect(page.locator("#timeline-range")).to_have_text(
                f"events {last - 99}–{last} of {last}"
            )
            # Its log lines: those of its seqs (a message every fourth event), under their
            # events.
            logs = page.locator("#timeline-log-count")
            await expect(logs).to_have_text("(25)")
            assert await lines_shown(page) == await lines_logged(
                session, base, LOBBY, last - 99, last
            )
            await page.click("text=Older →")
            await expect(rows.first).to_have_attribute("data-seq", str(last - 100))
            # The oldest page: with the lines of seq 0, if any (none: the room logs in no
            # turn that records no event).
            logged = await lines_logged(session, base, LOBBY, 0, last - 100)
            await expect(logs).to_have_text(f"({len(logged)})")
            assert await lines_shown(page) == logged
            await page.click("text=Oldest")
            await expect(rows.last).to_have_attribute("data-seq", "1")
            await expect(page.locator("text=Older →")).to_be_disabled()
            await page.click("text=← Newer")
            await expect(rows.last).to_have_attribute("data-seq", "101")
            await page.click("text=Newest")
            await expect(rows.first).to_have_attribute("data-seq", str(last))

            # The slider: the page just below the seq chosen, and the state after it.
            middle = last // 2
            await page.locator("#seq-slider").fill(str(middle))
            await expect(page.locator("#state")).to_have_attribute("data-seq", str(middle))
            await expect(rows.first).to_have_attribute("data-seq", str(middle))
            shown = json.loads(await page.locator("#state-json").text_content())
            assert shown == await state_printed(database_url, middle)
            # Only some types.
            await page.fill("#timeline-types", "message_received")
            await expect(page.locator("#events tbody tr .type").first).to_have_text(
                "message_received"
            )
            types = await page.locator("#events tbody tr .type").all_text_contents()
            assert set(types) == {"message_received"} and len(types) == 36
        finally:
            await room.close()


async def test_the_live_tail_shows_a_message_a_client_sends(
    database_url: str, new_page: Any
) -> None:
    async with admin_node(database_url) as (base, _), aiohttp.ClientSession() as session:
        room = Room(base, session)
        try:
            await room.join("alice")
            page, network = await open_page(new_page)
            await show_tail(page, base)
            await room.say("alice", "seen in the tail")
            # The frame received, what the room stored, and the line it published; newest
            # on top.
            said = page.locator("#tail tbody tr", has_text="seen in the tail")
            await expect(said.locator(".type")).to_have_text(
                ["message_published", "storage_put", "message_received"]
            )
            await expect(said.last).to_contain_text("CHAT/lobby")
            await expect(said.last).to_contain_text("alice")
            await capture(page, "tail")
            await page.check("#tail-messages")
            await room.say("alice", "and only the frame")
            only = page.locator("#tail tbody tr", has_text="and only the frame")
            await expect(only.locator(".type")).to_have_text(["message_received"])

            # One object's tail, in its own tab.
            await show_presence(page, base)
            await page.click(".tabs >> text=Tail")
            await expect(page.locator("#tail-status")).to_contain_text("live")
            await room.say("alice", "seen in the room's tail")
            await expect(
                page.locator("#tail tbody tr", has_text="seen in the room's tail")
            ).to_have_count(3)
            only_its_own(network, base)
        finally:
            await room.close()


async def test_with_a_token_set_the_page_asks_for_it_and_refuses_a_wrong_one(
    database_url: str, new_page: Any
) -> None:
    async with (
        admin_node(database_url, admin_token=TOKEN) as (base, _),
        aiohttp.ClientSession() as session,
    ):
        room = Room(base, session)
        try:
            await room.join("alice")
            page, network = await open_page(new_page)
            await page.goto(dashboard(base))
            await expect(page.locator("#token-form")).to_be_visible()
            await expect(page.locator("#token-error")).to_be_hidden()
            await expect(page.locator("#view")).to_be_hidden()

            await page.fill("#token", "wrong-token-wrong-token")
            await page.press("#token", "Enter")
            await expect(page.locator("#token-error")).to_contain_text("refused")
            await expect(page.locator("#token-form")).to_be_visible()
            await capture(page, "token")

            await page.fill("#token", TOKEN)
            await page.press("#token", "Enter")
            await expect(page.locator('#objects tr[data-object="CHAT/lobby"]')).to_be_visible()
            await expect(page.locator("#token-form")).to_be_hidden()
            # Kept for the tab: another view (its tail a streamed fetch) asks no more.
            await show_tail(page, base)
            await room.say("alice", "seen with a token")
            await expect(
                page.locator("#tail tbody tr", has_text="seen with a token")
            ).to_have_count(3)
            await page.reload()
            await expect(page.locator("#tail-status")).to_contain_text("live")
            await expect(page.locator("#token-form")).to_be_hidden()
            # No cookie, and the token nowhere in the page.
            assert await page.context.cookies() == []
            assert TOKEN not in await page.content()
            # Forgotten: asked for again.
            await page.click("#forget-token")
            await expect(page.locator("#token-form")).to_be_visible()
            only_its_own(network, base, "401")
        finally:
            await room.close()
