"""The base class of user objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from service.api.context import DurableObjectState
    from service.api.http import Request, Response
    from service.api.namespace import Env
    from service.api.websocket import WebSocket


class DurableObject:
    """Subclass this; every handler is optional.

    The constructor runs after the state is restored from the log, so ``ctx.storage`` and
    ``ctx.get_websockets()`` (with attachments) already hold what they held before
    hibernation.
    """

    #: Record every inbound WebSocket message as an event (turn off for chatty, low-value
    #: traffic; the effects of handlers are recorded either way).
    record_messages: ClassVar[bool] = True

    def __init__(self, ctx: DurableObjectState, env: Env) -> None:
        self.ctx = ctx
        self.env = env

    async def fetch(self, request: Request) -> Response:
        from service.api.http import Response

        return Response("Not found", status=404)

    if TYPE_CHECKING:

        async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None: ...

        async def websocket_close(
            self, ws: WebSocket, code: int, reason: str, was_clean: bool
        ) -> None: ...

        async def websocket_error(self, ws: WebSocket, error: Exception) -> None: ...

        async def alarm(self, alarm_info: Any = None) -> None: ...
