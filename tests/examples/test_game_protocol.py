"""The game example's protocol, over real WebSocket clients (no browser needed)."""

from __future__ import annotations

import aiohttp
import pytest

from service.events import values
from tests.examples.support import receive, receive_type, send, serve_example
from tests.support import eventually, replay


async def connect(node, player: str, match: str = "m1"):
    ws = await node.client.ws_connect(f"/game/{match}?playerId={player}")
    return ws


async def drain(*sockets) -> list[dict]:
    """The next state frame on each socket."""
    return [await receive_type(ws, "state") for ws in sockets]


async def move(ws, cell, *everyone) -> list[dict]:
    await send(ws, type="move", cell=cell)
    return await drain(*everyone)


async def test_upgrade_and_player_id_are_required(database_url):
    async with serve_example(database_url, "game") as node:
        response = await node.client.get("/game/m1?playerId=xena")
        assert response.status == 426
        assert await response.text() == "Expected WebSocket upgrade"
        with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
            await node.client.ws_connect("/game/m1")
        assert raised.value.status == 400


async def test_seats_spectators_and_a_win(database_url):
    async with serve_example(database_url, "game") as node:
        xena = await connect(node, "xena")
        (state,) = await drain(xena)
        assert state["you"] == {"playerId": "xena", "role": "X"}
        assert state["seats"] == {"X": "xena", "O": None}
        await send(xena, type="move", cell=4)
        assert await receive(xena) == {"type": "error", "message": "Waiting for a second player"}

        otto = await connect(node, "otto")
        state, _ = await drain(otto, xena)
        assert state["you"]["role"] == "O"
        sam = await connect(node, "sam")
        state, _, _ = await drain(sam, xena, otto)
        assert state["you"]["role"] == "spectator"
        assert state["spectators"] == ["sam"]

        everyone = (xena, otto, sam)
        states = await move(xena, 0, *everyone)
        assert all(s["board"][0] == "X" and s["turn"] == "O" for s in states)

        await send(xena, type="move", cell=1)
        assert (await receive(xena))["message"] == "Not your turn: O plays now"
        await send(otto, type="move", cell=0)
        assert (await receive(otto))["message"] == "Cell 0 is already taken"
        await send(otto, type="move", cell=9)
        assert (await receive(otto))["message"] == "Pick a cell from 0 to 8"
        await send(sam, type="move", cell=1)
        assert (await receive(sam))["message"] == "Spectators cannot play: both seats are taken"

        await move(otto, 3, *everyone)
        await move(xena, 1, *everyone)
        await move(otto, 4, *everyone)
        states = await move(xena, 2, *everyone)
        for state in states:
            assert (state["winner"], state["line"]) == ("X", [0, 1, 2])
            assert [m["cell"] for m in state["moves"]] == [0, 3, 1, 4, 2]
        await send(otto, type="move", cell=5)
        assert (await receive(otto))["message"] == "The game is over: start a new game"

        # The log alone gives the same game: it can settle a dispute.
        object_id = node.runtime.env["GAME"].id_from_name("m1").to_string()
        logged = values.decode((await replay(database_url, object_id)).storage["game"])
        assert logged == {k: v for k, v in state.items() if k in logged}
        assert logged["winner"] == "X" and len(logged["moves"]) == 5

        await send(sam, type="reset")
        assert (await receive(sam))["message"] == "Only the players can start a new game"
        await send(otto, type="reset")
        state, *_ = await drain(otto, xena, sam)
        # The players swap marks, so otto starts the second round.
        assert state["round"] == 2 and state["you"]["role"] == "X"
        assert state["board"] == [""] * 9 and state["winner"] is None
        for ws in everyone:
            await ws.close()


async def test_draw_and_reset_only_when_over(database_url):
    async with serve_example(database_url, "game") as node:
        xena, otto = await connect(node, "xena"), await connect(node, "otto")
        await drain(xena)
        await drain(xena, otto)
        # X: 0 2 3 7 8, O: 1 4 5 6 — nobody wins.
        for cell in (0, 1, 2, 4, 3, 5, 7, 6):
            mover = xena if cell in (0, 2, 3, 7, 8) else otto
            await move(mover, cell, xena, otto)
        await send(otto, type="reset")
        assert (await receive(otto))["message"] == "Finish this game first"
        states = await move(xena, 8, xena, otto)
        assert all(s["winner"] == "draw" and s["line"] == [] for s in states)
        await xena.close()
        await otto.close()


async def test_bad_frames_are_refused(database_url):
    async with serve_example(database_url, "game") as node:
        xena = await connect(node, "xena")
        await drain(xena)
        await xena.send_str("hello")
        assert "Send JSON" in (await receive(xena))["message"]
        await send(xena, type="jump")
        assert (await receive(xena))["message"] == "Unknown action 'jump': send move or reset"
        await xena.send_str("ping")
        assert await xena.receive_str(timeout=5) == "pong"
        await xena.close()


async def test_seats_are_kept_mid_game_and_given_away_between_games(database_url):
    async with serve_example(database_url, "game", hibernate_after=0.2) as node:
        xena, otto = await connect(node, "xena"), await connect(node, "otto")
        await drain(xena)
        await drain(xena, otto)
        await move(xena, 4, xena, otto)
        await otto.close()
        (state,) = await drain(xena)
        assert state["seats"] == {"X": "xena", "O": "otto"} and state["online"] == ["xena"]

        # The match hibernates; otto comes back to his seat and the game goes on.
        await eventually(lambda: not node.runtime.activations, timeout=5)
        otto = await connect(node, "otto")
        state, _ = await drain(otto, xena)
        assert state["you"]["role"] == "O" and state["board"][4] == "X"
        for cell, mover in ((0, otto), (3, xena), (1, otto), (5, xena)):
            await move(mover, cell, xena, otto)

        sam = await connect(node, "sam")
        await drain(sam, xena, otto)
        await otto.close()
        state, _ = await drain(sam, xena)
        # Between games the leaving player's seat goes to the spectator.
        assert state["seats"] == {"X": "xena", "O": "sam"} and state["you"]["role"] == "O"
        await xena.close()
        await sam.close()
