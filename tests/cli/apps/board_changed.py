"""Tomorrow's code of the note board (``board.py``), for the rerun tests: two changes.

``app`` stores one note differently (the note "third" is stored in capitals); ``closing``
closes a socket that says "bye" with another code and reason. Everything else is the same
code, imported from its sibling module.
"""

from __future__ import annotations

from board import Board

from service import Application, WebSocket


class LoudBoard(Board):
    def normalise(self, text: str) -> str:
        text = super().normalise(text)
        return text.upper() if text == "third" else text


class CurtBoard(Board):
    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        if message == "bye":
            ws.close(4001, "see you")
            return
        await super().websocket_message(ws, message)


app = Application({"BOARD": LoudBoard})
closing = Application({"BOARD": CurtBoard})
