"""Requests, RPC calls and operators' actions routed to the node that owns their object, and
their replies.

A request (or upgrade, or call, or action) for an object another live node owns is written
to the inbox with this node's id as ``reply_to`` and an id of its own; its caller waits
here, by that id.
The owner runs it as a turn, and the turn's commit writes the reply to the outbox, addressed
to this node, in the same transaction as the turn's events and ahead of the frames the turn
sent: nothing is answered before it is durable, and a socket the reply opens exists here
before any frame for it arrives. This node's outbox delivery hands the reply over
(``Node.replied``), in outbox order. A caller waits at most the route timeout; a reply that
comes later finds nobody and is dropped (a socket it opened is closed: its client is gone).

If the owner dies before its turn commits, the inbox row is still there: the node that takes
the object over runs it and replies, so a routed request may run once on the new owner. If
the database refuses the commits of its turn (not an outage: the data itself), the owner
reads the row again at once, and after ``max_attempts`` refusals drops it with a reply that
says so (``DROPPED``): the caller gets that error, not a timeout. If
the row comes back to this node (its owner let the object go before reading it), this node
runs it and settles the waiting caller directly (``take``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from service.api import rpc
from service.api.errors import ObjectResetError
from service.api.http import Response
from service.api.websocket import WebSocket
from service.ports.records import RemoteOutput
from service.runtime.delivery import Delivery
from service.runtime.operator_turns import OperatorOutcome


class Replies:
    """The callers of this node waiting for replies from other nodes, by request id."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._waiting: dict[str, asyncio.Future[Any]] = {}

    def wait(self, request_id: str) -> asyncio.Future[Any]:
        """A future for the reply to ``request_id`` (a Response or an ``rpc.Outcome``)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return future

    def take(self, request_id: str | None) -> asyncio.Future[Any] | None:
        """The caller waiting for ``request_id``, no longer waiting here; None if none is
        (it gave up)."""
        if request_id is None:
            return None
        future = self._waiting.pop(request_id, None)
        return None if future is None or future.done() else future

    def fail_all(self, reason: str) -> None:
        """Every caller still waiting hears that no reply will come (the node stops)."""
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ObjectResetError(reason))


# -- the owner's side: a turn's result as a reply ---------------------------------------------


#: Why a routed request or call gets no answer of its object: its row was dropped.
DROPPED = (
    "The object could not record this request: the database refused its commit too many times."
)


def answer(
    delivery: Delivery,
    result: Response | rpc.Outcome | OperatorOutcome | None,
    socket_of: Callable[[str], dict[str, Any] | None],
) -> RemoteOutput:
    """The reply to a routed delivery, from what its turn came to (None: its row was dropped);
    ``socket_of`` describes a socket the response opens."""
    if isinstance(result, rpc.Outcome):
        return reply(delivery, of_outcome(result))
    if isinstance(result, OperatorOutcome):
        return reply(delivery, result.to_reply())
    if isinstance(result, Response):
        ws = result.websocket
        if ws is None:
            return reply(delivery, of_response(result, None), result.body)
        socket = socket_of(ws.id)
        if socket is not None:
            return reply(delivery, of_response(result, socket))
        return reply(delivery, of_failure("The WebSocket was closed before it opened."))
    return reply(delivery, of_failure(DROPPED))


def reply(delivery: Delivery, body: dict[str, Any], data: bytes | None = None) -> RemoteOutput:
    """The outbox row answering ``delivery`` (routed from another node)."""
    return RemoteOutput(
        body.get("socket", {}).get("id", ""),
        "reply",
        data=data,
        node=delivery.reply_to,
        request_id=delivery.request_id,
        reply=body,
    )


def of_response(response: Response, socket: dict[str, Any] | None) -> dict[str, Any]:
    """A fetch's response as a reply carries it (the body travels beside it); ``socket``:
    the socket it opens, as the holding node's gateway needs it."""
    body: dict[str, Any] = {
        "kind": "response",
        "status": response.status,
        "headers": [[name, value] for name, value in response.headers.items()],
    }
    if socket is not None:
        body["socket"] = socket
    return body


def of_outcome(outcome: rpc.Outcome) -> dict[str, Any]:
    """An rpc call's outcome as a reply carries it (the result is already encoded)."""
    return {
        "kind": "outcome",
        "result": outcome.result,
        "error_type": outcome.error_type,
        "error_message": outcome.error_message,
    }


def of_failure(message: str) -> dict[str, Any]:
    """A request or call that was not handled (the object was reset, the row dropped)."""
    return {"kind": "failed", "message": message}


# -- the asking side: a reply as the caller's result ------------------------------------------


def result_of(row: RemoteOutput) -> Response | rpc.Outcome | OperatorOutcome | ObjectResetError:
    """What a reply gives its caller: a Response (a 101 with the opened socket's handle), an
    rpc outcome, an operator's action's outcome, or the error to raise."""
    body = row.reply or {}
    kind = body.get("kind")
    if kind == "operated":
        return OperatorOutcome.from_reply(body)
    if kind == "outcome":
        return rpc.Outcome(
            result=body.get("result"),
            error_type=body.get("error_type"),
            error_message=str(body.get("error_message", "")),
        )
    if kind == "response":
        headers = [(str(name), str(value)) for name, value in body.get("headers", [])]
        socket = body.get("socket")
        if socket is not None:
            return Response(
                status=101, headers=headers, websocket=WebSocket(str(socket["id"]), None)
            )
        return Response(row.data or b"", status=int(body["status"]), headers=headers)
    return ObjectResetError(str(body.get("message", "the owner could not handle the request")))
