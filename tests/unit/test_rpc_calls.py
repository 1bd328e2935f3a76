"""RPC calls without a node: names, the encoding of arguments and results, exceptions raised
again at the caller, the inbox encoding of a call, and how calls read in the history."""

from __future__ import annotations

import pytest

from service import DurableObject, RemoteError
from service.api import rpc
from service.events import types, values
from service.history.readable import describe
from service.ports.records import InboxItem
from service.runtime import delivery as delivery_module
from service.runtime.delivery import Delivery


class Target(DurableObject):
    limit = 3

    def __init__(self) -> None:  # no ctx needed to look methods up
        self.plain = lambda: None

    async def join(self, name: str) -> str:
        return name

    def count(self) -> int:
        return 1

    @staticmethod
    def helper() -> int:
        return 2

    @property
    def seats(self) -> int:
        return 4

    class Nested:
        pass

    def _secret(self) -> None:
        pass


def test_public_methods_sync_async_and_static_are_found():
    target = Target()
    assert rpc.method_of(target, "join").__name__ == "join"
    assert rpc.method_of(target, "count")() == 1
    assert rpc.method_of(target, "helper")() == 2


@pytest.mark.parametrize("name", ["nothing", "limit", "seats", "Nested", "plain", "ctx", "a-b"])
def test_what_is_no_method_of_the_class_is_not_implemented(name):
    with pytest.raises(TypeError) as raised:
        rpc.method_of(Target(), name)
    assert str(raised.value) == f'The RPC receiver does not implement the method "{name}".'


@pytest.mark.parametrize("name", ["_secret", "__init__", "__class__"])
def test_private_names_are_refused(name):
    with pytest.raises(TypeError, match="is private: methods whose names start with an under"):
        rpc.method_of(Target(), name)


@pytest.mark.parametrize(
    "name", ["fetch", "alarm", "websocket_message", "websocket_close", "websocket_error"]
)
def test_handlers_are_refused(name):
    with pytest.raises(TypeError, match=f'^"{name}" is a handler, not an RPC method'):
        rpc.method_of(Target(), name)


def test_arguments_are_copied_and_bytes_survive():
    items = [1, {"b": b"\x00\xff"}]
    args, kwargs = rpc.encode_arguments("m", (items, "t\x00"), {"k": b"raw"}, 1000)
    items[1]["b"] = b"changed"  # a later change of the caller's value is not sent
    assert values.decode(args) == [[1, {"b": b"\x00\xff"}], "t\x00"]
    assert values.decode(kwargs) == {"k": b"raw"}


def test_arguments_that_cannot_be_sent_are_refused():
    with pytest.raises(TypeError, match=r"^The arguments of m\(\) cannot be sent: .*type set"):
        rpc.encode_arguments("m", ({1},), {}, 1000)


def test_arguments_over_the_limit_are_refused():
    with pytest.raises(ValueError) as raised:
        rpc.encode_arguments("m", ("x" * 100,), {}, 50)
    assert str(raised.value) == (
        "RPC arguments cannot be larger than 50 bytes. Arguments of size 109 were provided."
    )


def test_results_over_the_limit_or_unsendable_are_refused():
    with pytest.raises(ValueError, match=r"^RPC results cannot be larger than 10 bytes"):
        rpc.encode_result("m", "x" * 20, 10)
    with pytest.raises(TypeError, match=r"^The result of m\(\) cannot be sent"):
        rpc.encode_result("m", object(), 10)


def test_builtin_exceptions_come_back_as_themselves():
    outcome = rpc.failure(ValueError("room is full"))
    with pytest.raises(ValueError) as raised:
        outcome.unwrap("join")
    assert str(raised.value) == "room is full"
    assert raised.value.__notes__ == ["Raised by join() of the called object, over RPC."]
    key = rpc.failure(KeyError("seat"))
    with pytest.raises(KeyError) as missing:
        key.unwrap("take")
    assert str(missing.value) == str(KeyError("seat"))


def test_other_exceptions_come_back_as_remote_errors_with_their_name():
    class RoomFull(Exception):
        pass

    outcome = rpc.failure(RoomFull("no seat left"))
    assert (outcome.error_type, outcome.error_message) == ("RoomFull", "no seat left")
    with pytest.raises(RemoteError) as raised:
        outcome.unwrap("join")
    assert raised.value.type_name == "RoomFull" and raised.value.message == "no seat left"
    assert str(raised.value) == "RoomFull: no seat left"
    # Passed on by an object that let it through: the origin stays.
    assert rpc.failure(raised.value) == outcome


def test_a_builtin_that_takes_other_arguments_comes_back_as_a_remote_error():
    with pytest.raises(RemoteError) as raised:
        rpc.Outcome(error_type="UnicodeDecodeError", error_message="bad byte").unwrap("m")
    assert str(raised.value) == "UnicodeDecodeError: bad byte"


def test_an_rpc_delivery_round_trips_through_the_inbox():
    call = rpc.Call(
        "c" * 32,
        "join",
        [values.encode(b"\x01"), "ada"],
        {"seat": 2},
        caller="a" * 64,
        caller_label="LOBBY/main",
        waiting=("b" * 64, "a" * 64),
    )
    item = Delivery("rpc", call=call, reply_to="node-2").to_inbox("o" * 64)
    assert item.kind == "rpc"
    stored = InboxItem(item.object_id, item.kind, item.socket_id, item.data, id=7)
    back = delivery_module.from_inbox(stored)
    assert back.kind == "rpc" and back.call == call
    assert back.reply_to == "node-2" and back.inbox_id == 7 and back.future is None


def test_calls_read_as_python_calls_with_their_caller():
    called = types.RpcCalled(
        call_id="c" * 32,
        method="join",
        args=["ada", values.encode(b"\x00\x01")],
        kwargs={"seat": 2},
        caller="a" * 64,
        caller_label="LOBBY/main",
    )
    assert describe(called) == 'called join("ada", "<2 bytes>", seat=2) by LOBBY/main'
    routed = types.RpcCalled(call_id="c" * 32, method="count")
    assert describe(routed) == "called count() by the router"
    assert describe(types.RpcReturned(call_id="c" * 32, result=[1])) == "call returned [1]"
    raised = types.RpcReturned(call_id="c" * 32, error_type="ValueError", error_message="full")
    assert describe(raised) == "call raised ValueError: full"
