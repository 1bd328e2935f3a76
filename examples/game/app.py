"""Tic-tac-toe matches: WebSockets at /game/<match>?playerId=ID, a page at /.

Every action is a WebSocket message, so the log holds each move as it arrived and the
state it produced: a disputed game can be replayed move by move.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

from service import (
    Application,
    DurableObject,
    DurableObjectState,
    Env,
    Request,
    Response,
    WebSocket,
    WebSocketPair,
    WebSocketRequestResponsePair,
)

#: Longest accepted player id, in characters.
MAX_ID = 32
MARKS = ("X", "O")
LINES = (
    (0, 1, 2), (3, 4, 5), (6, 7, 8),  # rows
    (0, 3, 6), (1, 4, 7), (2, 5, 8),  # columns
    (0, 4, 8), (2, 4, 6),  # diagonals
)  # fmt: skip


class IllegalAction(Exception):
    """An action the rules refuse; its message goes back to the player who sent it."""


def new_game(seats: dict[str, str | None], round_number: int = 1) -> dict[str, Any]:
    """An empty board; X moves first."""
    return {
        "round": round_number,
        "seats": seats,
        "board": [""] * 9,
        "turn": "X",
        "winner": None,  # "X", "O" or "draw" once the game is over
        "line": [],  # the winning cells
        "moves": [],  # [{"playerId", "mark", "cell"}], in order
    }


def in_progress(game: dict[str, Any]) -> bool:
    return bool(game["moves"]) and game["winner"] is None


class GameMatch(DurableObject):
    """One match. Its state is the ``game`` key in storage; each socket's attachment holds
    its player id. The first two players to join take X and O; anyone else watches."""

    def __init__(self, ctx: DurableObjectState, env: Env) -> None:
        super().__init__(ctx, env)
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: Request) -> Response:
        # The id is checked before the upgrade, so a plain GET of a WebSocket URL that was
        # refused tells a browser (which cannot see a refused handshake) what was wrong.
        player_id = request.query.get("playerId", "").strip()
        if not player_id:
            return Response("Missing ?playerId=ID", status=400)
        problem = _name_problem("player id", player_id)
        if problem is not None:
            return Response(problem, status=400)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return Response("Expected WebSocket upgrade", status=426)

        game = self.load()
        if player_id not in game["seats"].values():
            free = [mark for mark in MARKS if game["seats"][mark] is None]
            if free:
                game["seats"][free[0]] = player_id
                self.save(game)
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, tags=[f"player:{player_id}"])
        server.serialize_attachment({"playerId": player_id})
        self.broadcast(game)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        player_id = ws.deserialize_attachment()["playerId"]
        game = self.load()
        try:
            action = _action_of(message)
            if action["type"] == "move":
                play(game, player_id, action.get("cell"))
            elif action["type"] == "reset":
                game = rematch(game, player_id)
            else:
                raise IllegalAction(f"Unknown action {action['type']!r}: send move or reset")
        except IllegalAction as error:
            ws.send(json.dumps({"type": "error", "message": str(error)}))
            return
        self.save(game)
        self.broadcast(game)

    async def websocket_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        self.leave(ws)

    async def websocket_error(self, ws: WebSocket, error: Exception) -> None:
        self.leave(ws)

    # -- helpers ------------------------------------------------------------------------

    def leave(self, ws: WebSocket) -> None:
        """A player who leaves between games gives their seat to the first spectator.

        In the middle of a game the seat is kept, so the player can come back to it.
        """
        player_id = ws.deserialize_attachment()["playerId"]
        game = self.load()
        online = self.online()
        seats = game["seats"]
        mark = next((m for m in MARKS if seats[m] == player_id), None)
        if mark is not None and player_id not in online and not in_progress(game):
            watching = [p for p in online if p not in seats.values()]
            seats[mark] = watching[0] if watching else None
            self.save(game)
        self.broadcast(game)

    def load(self) -> dict[str, Any]:
        game = self.ctx.storage.kv.get("game")
        return game if game is not None else new_game({"X": None, "O": None})

    def save(self, game: dict[str, Any]) -> None:
        self.ctx.storage.kv.put("game", game)

    def open_sockets(self) -> list[WebSocket]:
        # A socket stays listed while its close handler runs; it is no longer OPEN then.
        return [ws for ws in self.ctx.get_websockets() if ws.ready_state == WebSocket.OPEN]

    def online(self) -> list[str]:
        """Connected player ids, in order of arrival."""
        ids = (ws.deserialize_attachment()["playerId"] for ws in self.open_sockets())
        return list(dict.fromkeys(ids))

    def broadcast(self, game: dict[str, Any]) -> None:
        """Send everyone the state, with their own role in ``you``."""
        online = self.online()
        spectators = [p for p in online if p not in game["seats"].values()]
        for ws in self.open_sockets():
            player_id = ws.deserialize_attachment()["playerId"]
            role = next((m for m in MARKS if game["seats"][m] == player_id), "spectator")
            you = {"playerId": player_id, "role": role}
            frame = {"type": "state", **game, "online": online, "spectators": spectators}
            ws.send(json.dumps({**frame, "you": you}))


def play(game: dict[str, Any], player_id: str, cell: Any) -> None:
    """Apply ``player_id``'s move to ``cell``, or raise IllegalAction saying why not."""
    mark = next((m for m in MARKS if game["seats"][m] == player_id), None)
    if mark is None:
        raise IllegalAction("Spectators cannot play: both seats are taken")
    if game["winner"] is not None:
        raise IllegalAction("The game is over: start a new game")
    if None in game["seats"].values():
        raise IllegalAction("Waiting for a second player")
    if game["turn"] != mark:
        raise IllegalAction(f"Not your turn: {game['turn']} plays now")
    if isinstance(cell, bool) or not isinstance(cell, int) or not 0 <= cell <= 8:
        raise IllegalAction("Pick a cell from 0 to 8")
    if game["board"][cell]:
        raise IllegalAction(f"Cell {cell} is already taken")
    board = game["board"]
    board[cell] = mark
    game["moves"].append({"playerId": player_id, "mark": mark, "cell": cell})
    line = next((line for line in LINES if all(board[i] == mark for i in line)), None)
    if line is not None:
        game["winner"], game["line"] = mark, list(line)
    elif all(board):
        game["winner"] = "draw"
    else:
        game["turn"] = "O" if mark == "X" else "X"


def rematch(game: dict[str, Any], player_id: str) -> dict[str, Any]:
    """A new game once this one is over; the players swap marks, so each starts in turn."""
    if player_id not in game["seats"].values():
        raise IllegalAction("Only the players can start a new game")
    if in_progress(game):
        raise IllegalAction("Finish this game first")
    seats = {"X": game["seats"]["O"], "O": game["seats"]["X"]}
    return new_game(seats, game["round"] + 1)


def _name_problem(what: str, name: str) -> str | None:
    """Why ``name`` cannot be a player id, or None when it can be one.

    It becomes a tag, which PostgreSQL must hold as text: NUL and lone surrogates cannot be.
    Other control characters (a line break, a tab) could, but only garble every page that
    shows the name, so they are refused too.
    """
    if len(name) > MAX_ID:
        return f"A {what} has at most {MAX_ID} characters"
    categories = {unicodedata.category(char) for char in name}
    if "Cc" in categories:
        return f"A {what} cannot contain control characters (such as NUL or a line break)"
    if "Cs" in categories:
        return f"A {what} must be valid Unicode text (it has a lone surrogate)"
    return None


def _action_of(message: str | bytes) -> dict[str, Any]:
    try:
        action = json.loads(message) if isinstance(message, str) else None
    except ValueError:
        action = None
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        raise IllegalAction('Send JSON such as {"type": "move", "cell": 4}')
    return action


app = Application(bindings={"GAME": GameMatch}, static_dir=Path(__file__).parent / "static")
