"""Work items of an object's mailbox, and their inbox encoding."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any, Literal

from service.api import rpc
from service.api.http import Request
from service.events import values
from service.ports.operator_actions import OperatorAction
from service.ports.records import InboxItem

#: "drop" consumes an inbox row that failed too often, without running a handler; "rpc"
#: calls a method of the object (through a stub); "operator" is an operator's action
#: (``operator_turns``).
Kind = Literal["fetch", "message", "close", "error", "alarm", "drop", "rpc", "operator"]

#: Deliveries of a socket's events (the others are requests, calls and alarms).
SOCKET_KINDS = frozenset({"message", "close", "error"})


@dataclass(slots=True)
class Delivery:
    """One event for an object: run its handler, in arrival order, one at a time."""

    kind: Kind
    socket_id: str = ""
    data: str | bytes | None = None
    code: int = 1005
    reason: str = ""
    was_clean: bool = True
    error: str = ""
    request: Request | None = None
    #: The caller's wait: a fetch's Response, an rpc call's ``rpc.Outcome``.
    future: asyncio.Future[Any] | None = None
    inbox_id: int | None = None
    #: How many times a commit covering this delivery failed.
    attempts: int = 0
    #: The call of an "rpc" delivery.
    call: rpc.Call | None = None
    #: The node waiting for the response of a "fetch" or the outcome of an "rpc" delivery
    #: that came through the inbox (the reply goes back to it, matched by ``request_id``);
    #: None when the caller is local.
    reply_to: str | None = None
    #: What the reply to a routed "fetch" or "rpc" is matched by (an rpc call's call id).
    request_id: str | None = None
    #: The action of an "operator" delivery.
    action: OperatorAction | None = None

    def fail(self, error: Exception) -> None:
        """Tell the caller waiting for this delivery's response, if any, that it failed."""
        if self.future is not None and not self.future.done():
            self.future.set_exception(error)

    def to_inbox(self, object_id: str) -> InboxItem:
        if self.kind == "message":
            if isinstance(self.data, bytes):
                data: dict[str, Any] = {"binary": base64.b64encode(self.data).decode("ascii")}
            else:
                data = {"text": values.encode_str(self.data or "")}
        elif self.kind == "close":
            data = {"code": self.code, "reason": self.reason, "was_clean": self.was_clean}
        elif self.kind == "error":
            data = {"error": self.error, "code": self.code}
        elif self.kind == "rpc" and self.call is not None:
            data = _rpc_data(self.call, self.reply_to)
        elif self.kind == "fetch" and self.request is not None:
            data = _fetch_data(self.request, self.request_id, self.reply_to)
        elif self.kind == "operator" and self.action is not None:
            data = _operator_data(self.action, self.request_id, self.reply_to)
        else:
            raise ValueError(f"{self.kind} deliveries do not go through the inbox")
        data["attempts"] = self.attempts
        return InboxItem(object_id, self.kind, self.socket_id, data)


def from_inbox(item: InboxItem) -> Delivery:
    data = item.data
    attempts = int(data.get("attempts", 0))
    if item.kind == "message":
        payload: str | bytes = (
            base64.b64decode(data["binary"]) if "binary" in data else values.decode(data["text"])
        )
        return Delivery("message", item.socket_id, payload, inbox_id=item.id, attempts=attempts)
    if item.kind == "close":
        return Delivery(
            "close",
            item.socket_id,
            code=int(data["code"]),
            reason=str(data["reason"]),
            was_clean=bool(data["was_clean"]),
            inbox_id=item.id,
            attempts=attempts,
        )
    if item.kind == "rpc":
        call = _rpc_call(data)
        return Delivery(
            "rpc",
            call=call,
            reply_to=data.get("reply_to"),
            request_id=call.call_id,
            inbox_id=item.id,
            attempts=attempts,
        )
    if item.kind == "operator":
        return Delivery(
            "operator",
            action=_operator_action(data["action"]),
            reply_to=data.get("reply_to"),
            request_id=data.get("request_id"),
            inbox_id=item.id,
            attempts=attempts,
        )
    if item.kind == "fetch":
        return Delivery(
            "fetch",
            request=Request(
                str(data["url"]),
                method=str(data["method"]),
                headers=[(str(name), str(value)) for name, value in data["headers"]],
                body=base64.b64decode(data["body"]),
            ),
            reply_to=data.get("reply_to"),
            request_id=data.get("request_id"),
            inbox_id=item.id,
            attempts=attempts,
        )
    return Delivery(
        "error",
        item.socket_id,
        error=str(data["error"]),
        code=int(data.get("code", 1006)),
        inbox_id=item.id,
        attempts=attempts,
    )


def _rpc_data(call: rpc.Call, reply_to: str | None) -> dict[str, Any]:
    """An rpc call as an inbox row holds it: arguments already encoded, and the node to
    reply to."""
    return {
        "call_id": call.call_id,
        "method": call.method,
        "args": call.args,
        "kwargs": call.kwargs,
        "caller": call.caller,
        "caller_label": call.caller_label,
        "waiting": list(call.waiting),
        "reply_to": reply_to,
    }


def _fetch_data(request: Request, request_id: str | None, reply_to: str | None) -> dict[str, Any]:
    """A request as an inbox row holds it: all of it, the body base64-encoded, and the node
    to reply to."""
    return {
        "request_id": request_id,
        "reply_to": reply_to,
        "method": request.method,
        "url": request.url,
        "headers": [[name, value] for name, value in request.headers.items()],
        "body": base64.b64encode(request.body).decode("ascii"),
    }


def _operator_data(
    action: OperatorAction, request_id: str | None, reply_to: str | None
) -> dict[str, Any]:
    """An operator's action as an inbox row holds it (a binary frame base64-encoded), and
    the node to reply to. The row names no socket: a row dropped after failed commits must
    not close the socket the action is about (``dispatch``'s "drop")."""
    fields: dict[str, Any] = {
        "kind": action.kind,
        "by": action.by,
        "seq": action.seq,
        "socket_id": action.socket_id,
        "code": action.code,
        "reason": action.reason,
    }
    if isinstance(action.data, bytes):
        fields["binary"] = base64.b64encode(action.data).decode("ascii")
    else:
        fields["text"] = values.encode_str(action.data)
    return {"request_id": request_id, "reply_to": reply_to, "action": fields}


def _operator_action(fields: dict[str, Any]) -> OperatorAction:
    data: str | bytes = (
        base64.b64decode(fields["binary"]) if "binary" in fields else values.decode(fields["text"])
    )
    return OperatorAction(
        kind=fields["kind"],
        by=str(fields["by"]),
        seq=int(fields["seq"]),
        socket_id=str(fields["socket_id"]),
        code=int(fields["code"]),
        reason=str(fields["reason"]),
        data=data,
    )


def _rpc_call(data: dict[str, Any]) -> rpc.Call:
    return rpc.Call(
        str(data["call_id"]),
        str(data["method"]),
        list(data["args"]),
        dict(data["kwargs"]),
        caller=data.get("caller"),
        caller_label=data.get("caller_label"),
        waiting=tuple(data.get("waiting", ())),
    )
