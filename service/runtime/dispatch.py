"""Running the user's handler for one delivery, with the reference semantics of each event."""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from service.api import rpc, websocket
from service.api import text as api_text
from service.api.core import ObjectCore
from service.api.durable_object import DurableObject
from service.api.errors import DurableObjectError
from service.api.http import Request, Response
from service.api.websocket import CloseEvent, ErrorEvent, MessageEvent, WebSocket
from service.events import types, values
from service.events.fold import ObjectState
from service.runtime import operator_turns
from service.runtime.alarms import AlarmScheduler
from service.runtime.delivery import Delivery
from service.runtime.inbox_writes import NOT_RECORDED
from service.runtime.operator_turns import OperatorOutcome
from service.runtime.turn import ResetRequested, Turn, rollback


class Activation(ObjectCore, Protocol):
    """What running a handler needs from the live object (``object_core.Core``): the
    core its ctx and sockets use, and the user's instance and class."""

    key: str
    cls: type[DurableObject]
    instance: DurableObject | None

    @property
    def alarms(self) -> AlarmScheduler: ...

    def log_extra(self, action: str = "activation") -> dict[str, str]: ...

    async def state_at(self, seq: int) -> ObjectState: ...


log = logging.getLogger(__name__)

EVENT_TIMEOUT_MESSAGE = "Actor exceeded event execution time and was disconnected."


@dataclass(frozen=True)
class AlarmInfo:
    """Passed to ``alarm()``: how many times this alarm has failed before."""

    retry_count: int
    is_retry: bool


async def run(
    activation: Activation, delivery: Delivery, turn: Turn
) -> Response | rpc.Outcome | OperatorOutcome | None:
    """Run the handler for ``delivery`` inside ``turn``; return the response of a fetch, the
    outcome of an rpc call or of an operator's action."""
    kind = delivery.kind
    if kind == "operator":
        assert delivery.action is not None
        return await operator_turns.run(activation, delivery.action)
    if kind == "fetch":
        return await _fetch(activation, delivery, turn)
    if kind == "alarm":
        await _alarm(activation, turn)
        return None
    if kind == "drop":
        # Its sender must hear that it was lost: the socket closes, and the client reconnects
        # (wherever the socket is held: the close goes out with this turn's commit).
        if delivery.socket_id in activation.state.sockets:
            activation.close_socket(delivery.socket_id, *NOT_RECORDED)
        return None
    if kind == "rpc":
        return await _rpc(activation, delivery, turn)
    socket = activation.state.sockets.get(delivery.socket_id)
    if socket is None:
        return None  # closed already: the inbox row is consumed and nothing else happens
    handle = websocket.handle_of(activation, delivery.socket_id)
    if kind == "message":
        await _message(activation, delivery, turn, handle, socket.hibernatable)
    elif kind == "close":
        await _close(activation, delivery, turn, handle, socket.hibernatable)
    else:
        await _error(activation, delivery, turn, handle, socket.hibernatable)
    return None


async def _fetch(activation: Activation, delivery: Delivery, turn: Turn) -> Response:
    assert activation.instance is not None and delivery.request is not None
    # The request is a fact of the turn: it stays recorded even if the handler raises.
    activation.record(request_event(delivery.request, activation.limits.max_message_bytes))
    turn.kept = len(turn.events)
    activation.current_url = delivery.request.url
    try:
        response, error = await invoke(
            activation, turn, activation.instance.fetch, delivery.request
        )
    finally:
        activation.current_url = None
    if error is not None:
        # The exception and its traceback are in the log (invoke); its text may hold
        # anything the object knows, so the client is told only where to look.
        return Response(
            "Internal error: the object's fetch() raised an exception. "
            "The server's log has the details.",
            status=500,
        )
    if not isinstance(response, Response):
        rollback_turn(activation, turn)
        return Response("fetch() must return a Response.", status=500)
    ws = response.websocket
    if ws is not None:
        if not websocket.server_end_accepted(ws):
            rollback_turn(activation, turn)
            return Response(
                "The server end of the WebSocketPair must be accepted (ctx.accept_websocket or "
                "accept()) before the client end is returned.",
                status=500,
            )
        websocket.unpair(ws)
    return response


def request_event(request: Request, max_body_bytes: int) -> types.RequestReceived:
    """What the log keeps of a request: method, URL, headers (credentials redacted) and the
    body up to ``max_body_bytes``."""
    headers = {
        api_text.storable(name): (
            types.REDACTED if name.lower() in types.REDACTED_HEADERS else api_text.storable(value)
        )
        for name, value in request.headers.items()
    }
    kept = request.body[:max_body_bytes]
    text: Any = None
    binary: str | None = None
    try:
        text = values.encode_str(kept.decode("utf-8")) if kept else None
    except UnicodeDecodeError:  # binary, or UTF-8 cut inside a character: kept as base64
        binary = base64.b64encode(kept).decode("ascii")
    return types.RequestReceived(
        method=api_text.storable(request.method),
        url=api_text.storable(request.url),
        headers=headers,
        text=text,
        binary=binary,
        body_bytes=len(request.body),
    )


async def _message(
    activation: Activation, delivery: Delivery, turn: Turn, handle: WebSocket, hibernatable: bool
) -> None:
    data = delivery.data if delivery.data is not None else ""
    if activation.cls.record_messages:
        if isinstance(data, bytes):
            event = types.MessageReceived(
                socket_id=delivery.socket_id, binary=base64.b64encode(data).decode("ascii")
            )
        else:
            event = types.MessageReceived(
                socket_id=delivery.socket_id, text=values.encode_str(data)
            )
        activation.record(event)
    turn.kept = len(turn.events)
    if hibernatable:
        handler = getattr(activation.instance, "websocket_message", None)
        if handler is not None:
            await invoke(activation, turn, handler, handle, data, timed=True)
    else:
        await _listeners(activation, turn, handle, "message", MessageEvent(data))


async def _close(
    activation: Activation, delivery: Delivery, turn: Turn, handle: WebSocket, hibernatable: bool
) -> None:
    websocket.closed_by_peer(handle)
    if hibernatable:
        handler = getattr(activation.instance, "websocket_close", None)
        if handler is not None:
            await invoke(
                activation,
                turn,
                handler,
                handle,
                delivery.code,
                delivery.reason,
                delivery.was_clean,
                timed=True,
            )
    else:
        event = CloseEvent(delivery.code, delivery.reason, delivery.was_clean)
        await _listeners(activation, turn, handle, "close", event)
    # The socket stays listed while its close handler runs, and leaves with this event.
    activation.record(
        types.WebSocketClosed(
            socket_id=delivery.socket_id,
            code=delivery.code,
            reason=delivery.reason,
            was_clean=delivery.was_clean,
        )
    )
    _release(activation, handle)


async def _error(
    activation: Activation, delivery: Delivery, turn: Turn, handle: WebSocket, hibernatable: bool
) -> None:
    # After an error, send() and close() on the socket quietly do nothing (as in workerd).
    websocket.release(handle)
    error = DurableObjectError(delivery.error)
    if hibernatable:
        handler = getattr(activation.instance, "websocket_error", None)
        if handler is not None:
            await invoke(activation, turn, handler, handle, error, timed=True)
    else:
        await _listeners(activation, turn, handle, "error", ErrorEvent(error))
    activation.record(
        types.WebSocketErrored(
            socket_id=delivery.socket_id, error=delivery.error, code=delivery.code
        )
    )
    _release(activation, handle)


def _release(activation: Activation, handle: WebSocket) -> None:
    websocket.release(handle)
    activation.handles.pop(handle.id, None)


async def _listeners(
    activation: Activation, turn: Turn, handle: WebSocket, event_type: str, event: Any
) -> None:
    for listener in websocket.listeners_of(handle, event_type):
        await invoke(activation, turn, listener, event)


async def _alarm(activation: Activation, turn: Turn) -> None:
    state = activation.state
    now_ms = int(time.time() * 1000)
    alarms = activation.alarms
    if state.alarm_ms is None or not alarms.due(state.alarm_ms, now_ms):
        return  # deleted or moved since it was scheduled
    handler = getattr(activation.instance, "alarm", None)
    retry_count = alarms.retry_count(activation.key)
    activation.record(types.AlarmFired(retry_count=retry_count, is_retry=retry_count > 0))
    # Inside alarm() the alarm no longer counts as set, unless the handler sets a new one.
    activation.record(types.AlarmDeleted())
    turn.kept = len(turn.events)
    if handler is None:
        return
    info = AlarmInfo(retry_count=retry_count, is_retry=retry_count > 0)
    _, error = await invoke(activation, turn, handler, *_alarm_args(handler, info))
    if error is None:
        alarms.succeeded(activation.key)
        return
    delay = alarms.failed(activation.key)
    if delay is not None and state.alarm_ms is None:
        activation.record(types.AlarmSet(scheduled_ms=now_ms + int(delay * 1000)))


def _alarm_args(handler: Any, info: AlarmInfo) -> tuple[Any, ...]:
    try:
        parameters = inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return (info,)
    return (info,) if parameters else ()


async def invoke(
    activation: Activation,
    turn: Turn,
    handler: Any,
    *args: Any,
    timed: bool = False,
    kwargs: Mapping[str, Any] | None = None,
) -> tuple[Any, BaseException | None]:
    """Call a user handler; if it raises, log it and undo everything it did in this turn."""
    timeout_ms = activation.state.event_timeout_ms if timed else None
    try:
        result = handler(*args, **kwargs) if kwargs else handler(*args)
        if inspect.isawaitable(result):
            if timeout_ms:
                try:
                    async with asyncio.timeout(timeout_ms / 1000) as scope:
                        result = await result
                except TimeoutError:
                    if scope.expired():
                        raise ResetRequested(EVENT_TIMEOUT_MESSAGE) from None
                    raise
            else:
                result = await result
        return result, None
    except (ResetRequested, asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # any other BaseException is still the handler's failure
        log.exception(
            "handler %s raised",
            getattr(handler, "__qualname__", handler),
            extra=activation.log_extra("handler"),
        )
        rollback_turn(activation, turn)
        return None, error


async def _rpc(activation: Activation, delivery: Delivery, turn: Turn) -> rpc.Outcome:
    """A method called through a stub: the call is a fact of the turn (kept if the method
    raises), and so is what it came to, recorded last, after what the method wrote."""
    call = delivery.call
    assert call is not None
    activation.record(
        types.RpcCalled(
            call_id=call.call_id,
            method=api_text.storable(call.method),
            args=call.args,
            kwargs=call.kwargs,
            caller=call.caller,
            caller_label=(
                None if call.caller_label is None else api_text.storable(call.caller_label)
            ),
        )
    )
    turn.kept = len(turn.events)
    activation.call_waiting = call.waiting
    try:
        outcome = await _call_method(activation, call, turn)
    finally:
        activation.call_waiting = ()
    activation.record(
        types.RpcReturned(
            call_id=call.call_id,
            result=outcome.result,
            error_type=(
                None if outcome.error_type is None else api_text.storable(outcome.error_type)
            ),
            error_message=api_text.storable(outcome.error_message),
        )
    )
    return outcome


async def _call_method(activation: Activation, call: rpc.Call, turn: Turn) -> rpc.Outcome:
    try:
        method = rpc.method_of(activation.instance, call.method)
    except TypeError as missing:
        return rpc.failure(missing)
    # Decoded here, for this call alone: the method gets copies it may change freely.
    args, kwargs = values.decode(call.args), values.decode(call.kwargs)
    result, error = await invoke(activation, turn, method, *args, kwargs=kwargs)
    if error is not None:
        return rpc.failure(error)
    try:
        encoded = rpc.encode_result(call.method, result, activation.limits.max_message_bytes)
    except (TypeError, ValueError) as refused:
        # As for a fetch that returns no Response: the turn's writes go with it.
        rollback_turn(activation, turn)
        return rpc.failure(refused)
    return rpc.Outcome(result=encoded)


def rollback_turn(activation: Activation, turn: Turn) -> None:
    """Drop the handler's part of the turn: its events (undone) and its output."""
    rollback(activation.state, turn, turn.kept)
    turn.outputs.clear()
