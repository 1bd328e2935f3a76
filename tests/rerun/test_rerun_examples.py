"""The examples' own code agrees with the histories it recorded: a chat with its timestamps and
a game played to a win, each across a hibernation and a wake, with a refused request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.history_root import open_history
from service.ports.history import HistoryService
from service.rerun.engine import rerun
from service.rerun.report import INBOUND
from service.settings import Settings
from tests.examples.support import example, receive_type, send, serve_example
from tests.support import eventually


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[HistoryService]:
    async with open_history(Settings(database_url=database_url)) as service:
        yield service


async def _inbound(history: HistoryService, ref: str) -> int:
    page = await history.events(ref, types=INBOUND, limit=10_000)
    return len(page.events)


async def test_the_chat_reruns_without_divergence(
    database_url: str, history: HistoryService
) -> None:
    async with serve_example(database_url, "chat", hibernate_after=0.3) as node:
        ada = await node.client.ws_connect("/chat/lobby?username=ada")
        bob = await node.client.ws_connect("/chat/lobby?username=bob")
        for n, ws in enumerate((ada, bob, ada)):
            await send(ws, type="message", text=f"hello {n}")
            await receive_type(bob, "message")
        assert (await node.client.get("/chat/lobby?username=cy")).status == 426
        await eventually(lambda: not node.runtime.activations, timeout=10)
        await send(bob, type="message", text="after a wake")
        await receive_type(ada, "message")
        await ada.close()
        await receive_type(bob, "leave")
    report = await rerun(history, example("chat"), "CHAT/lobby")
    assert report.divergence is None, report.divergence
    assert report.agreed == await _inbound(history, "CHAT/lobby")


async def test_a_game_played_to_a_win_reruns_without_divergence(
    database_url: str, history: HistoryService
) -> None:
    async with serve_example(database_url, "game", hibernate_after=0.3) as node:
        xena = await node.client.ws_connect("/game/m1?playerId=xena")
        await receive_type(xena, "state")
        otto = await node.client.ws_connect("/game/m1?playerId=otto")
        for ws in (xena, otto):
            await receive_type(ws, "state")
        for ws, cell in ((xena, 0), (otto, 3), (xena, 1), (otto, 4)):
            await send(ws, type="move", cell=cell)
            for each in (xena, otto):
                await receive_type(each, "state")
        await send(otto, type="move", cell=8)  # not O's turn: refused, and recorded
        assert (await receive_type(otto, "error"))["message"] == "Not your turn: X plays now"
        await eventually(lambda: not node.runtime.activations, timeout=10)
        await send(xena, type="move", cell=2)  # wakes the match; X wins
        assert (await receive_type(otto, "state"))["winner"] == "X"
    report = await rerun(history, example("game"), "GAME/m1")
    assert report.divergence is None, report.divergence
    assert report.agreed == await _inbound(history, "GAME/m1")
