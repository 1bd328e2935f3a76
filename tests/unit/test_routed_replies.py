"""Requests routed to another node, and their replies, as the inbox and the outbox hold them:
a request goes whole (method, URL, headers, body bytes) with the node to reply to; a reply
gives its caller the response (a 101 with the opened socket's handle), the call's outcome,
or the error to raise."""

from __future__ import annotations

import json

import pytest

from service.api import rpc
from service.api.errors import ObjectResetError
from service.api.http import Request, Response
from service.api.websocket import WebSocket
from service.ports.operator_actions import Operated, OperatorAction, SocketClosingError
from service.ports.records import InboxItem
from service.runtime import delivery as delivery_module
from service.runtime import replies
from service.runtime.delivery import Delivery
from service.runtime.operator_turns import OperatorOutcome


def through_json(item: InboxItem) -> InboxItem:
    """The row as the inbox gives it back: its data through jsonb, with an id."""
    return InboxItem(
        item.object_id, item.kind, item.socket_id, json.loads(json.dumps(item.data)), 9
    )


def test_a_request_travels_whole_with_the_node_to_reply_to() -> None:
    body = b"\x00\xffbinary \xe2\x82"
    request = Request(
        "http://host/room/a?x=1", method="post", headers={"X-Test": "yes", "Cookie": "c"}, body=body
    )
    sent = Delivery("fetch", request=request, reply_to="n2", request_id="r" * 32)
    back = delivery_module.from_inbox(through_json(sent.to_inbox("o" * 64)))
    assert back.kind == "fetch" and back.inbox_id == 9 and back.future is None
    assert (back.reply_to, back.request_id) == ("n2", "r" * 32)
    assert back.request is not None
    assert (back.request.method, back.request.url, back.request.body) == ("POST", request.url, body)
    assert dict(back.request.headers.items()) == {"X-Test": "yes", "Cookie": "c"}
    assert back.request.query == {"x": "1"}


def test_an_rpc_call_is_matched_by_its_call_id() -> None:
    call = rpc.Call("c" * 32, "add", [1], {})
    back = delivery_module.from_inbox(
        through_json(Delivery("rpc", call=call, reply_to="n2").to_inbox("o" * 64))
    )
    assert back.request_id == "c" * 32 and back.reply_to == "n2"


def asked(kind: str = "fetch") -> Delivery:
    return Delivery(kind, reply_to="n2", request_id="r" * 32)  # type: ignore[arg-type]


def test_a_response_comes_back_with_its_status_headers_and_body() -> None:
    response = Response(b"\x00body", status=201, headers={"X-Board": "1"})
    row = replies.answer(asked(), response, lambda _: None)
    assert (row.kind, row.node, row.request_id, row.socket_id) == ("reply", "n2", "r" * 32, "")
    row.reply = json.loads(json.dumps(row.reply))
    back = replies.result_of(row)
    assert isinstance(back, Response)
    assert (back.status, back.body, back.headers["x-board"]) == (201, b"\x00body", "1")


def test_an_upgrade_comes_back_as_a_101_with_the_sockets_handle() -> None:
    socket = {"id": "s" * 32, "object_id": "o" * 64, "binding": "B", "hibernatable": True}

    response = Response(status=101, websocket=WebSocket("s" * 32, None))
    row = replies.answer(asked(), response, lambda socket_id: socket)
    assert row.socket_id == "s" * 32 and row.reply is not None
    back = replies.result_of(row)
    assert isinstance(back, Response) and back.status == 101
    assert back.websocket is not None and back.websocket.id == "s" * 32


def test_an_outcome_and_a_failure_come_back_as_such() -> None:
    outcome = rpc.Outcome(error_type="ValueError", error_message="bad")
    back = replies.result_of(replies.answer(asked("rpc"), outcome, lambda _: None))
    assert back == outcome
    dropped = replies.result_of(replies.answer(asked("drop"), None, lambda _: None))
    assert isinstance(dropped, ObjectResetError)
    assert str(dropped) == replies.DROPPED


def test_an_operators_action_travels_whole_and_names_no_socket_of_the_row() -> None:
    for frame in ("notice \x00 ünï", b"\x00\xff"):
        action = OperatorAction("send", "grace (admin-api)", socket_id="s" * 32, data=frame)
        sent = Delivery("operator", action=action, reply_to="n2", request_id="r" * 32)
        row = sent.to_inbox("o" * 64)
        # A row dropped after failed commits closes its socket: this one must close none.
        assert row.socket_id == ""
        back = delivery_module.from_inbox(through_json(row))
        assert (back.kind, back.action, back.reply_to, back.request_id) == (
            "operator",
            action,
            "n2",
            "r" * 32,
        )
    close = OperatorAction("close", "grace", socket_id="s" * 32, code=4000, reason="spam")
    restore = OperatorAction("restore", "grace", seq=42)
    for action in (close, restore):
        row = Delivery("operator", action=action).to_inbox("o" * 64)
        assert delivery_module.from_inbox(through_json(row)).action == action


def test_an_operators_outcome_comes_back_done_or_refused() -> None:
    done = OperatorOutcome(Operated(12, keys=3, alarm_ms=99))
    row = replies.answer(asked("operator"), done, lambda _: None)
    row.reply = json.loads(json.dumps(row.reply))
    back = replies.result_of(row)
    assert isinstance(back, OperatorOutcome) and back.result() == Operated(12, 3, 99)
    refused = OperatorOutcome(refused="socket_closing", message="socket s is closing already")
    row = replies.answer(asked("operator"), refused, lambda _: None)
    row.reply = json.loads(json.dumps(row.reply))
    back = replies.result_of(row)
    assert isinstance(back, OperatorOutcome)
    with pytest.raises(SocketClosingError, match="socket s is closing already"):
        back.result()
