"""``ctx.storage`` and ``ctx.storage.kv`` inside a running object, checked against the log."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service import DurableObjectError
from service.events import values
from tests.support import replay

KEYS = ["", "a", "ab", "abc", "abd", "b", "ba", "bb", "c", "é", "\U0001f600"]


def raises(kind: type[BaseException], message: str) -> Any:
    return pytest.raises(kind, match=f"^{re.escape(message)}$")


async def live_equals_log(probe, name: str = "probe") -> dict[str, Any]:
    """The object's storage as its log alone defines it."""
    state = await replay(probe.database_url, probe.object_id(name))
    return {key: values.decode(value) for key, value in state.storage.items()}


# -- async get / put / delete ---------------------------------------------------------------


async def test_get_put_delete(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        assert await storage.get("missing") is None
        await storage.put("k", {"a": [1, 2.5, None, True], "b": b"\x00raw"})
        assert await storage.get("k") == {"a": [1, 2.5, None, True], "b": b"\x00raw"}
        await storage.put("k", "replaced")
        assert await storage.get("k") == "replaced"
        await storage.put("none", None)
        assert await storage.get("none") is None
        assert await storage.get(["none"]) == {"none": None}
        assert await storage.delete("k") is True
        assert await storage.delete("k") is False
        assert await storage.get("k") is None
        return True

    assert await probe.run(scenario)
    assert await live_equals_log(probe) == {"none": None}


async def test_get_many_is_sorted_and_skips_missing_keys(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put({"b": 2, "a": 1, "é": 3, "c": 4})
        got = await storage.get(["é", "missing", "b", "a", "b"])
        assert list(got.items()) == [("a", 1), ("b", 2), ("é", 3)]
        assert await storage.get([]) == {}
        assert await storage.get(("c",)) == {"c": 4}
        return True

    assert await probe.run(scenario)


async def test_put_many_and_delete_many(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put({f"k{i}": i for i in range(5)})
        assert await storage.delete(["k0", "k1", "missing", "k1"]) == 2
        assert await storage.delete([]) == 0
        assert await storage.delete(["missing"]) == 0
        await storage.put({})
        return await storage.list()

    assert await probe.run(scenario) == {"k2": 2, "k3": 3, "k4": 4}
    assert await live_equals_log(probe) == {"k2": 2, "k3": 3, "k4": 4}


async def test_put_without_a_value_and_mixed_forms(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        with raises(TypeError, "put() called with undefined value."):
            await storage.put("k")
        with raises(TypeError, "put() called with undefined value."):
            storage.kv.put("k")
        with pytest.raises(TypeError, match=r"^put\(\) may only be called with a single key"):
            await storage.put({"a": 1}, 2)
        with pytest.raises(TypeError):
            await storage.put(1, "not a string key")
        return await storage.list()

    assert await probe.run(scenario) == {}
    assert await live_equals_log(probe) == {}


async def test_unstorable_values_are_refused(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        for bad in (float("nan"), float("inf"), {1, 2}, object(), {"k": float("-inf")}):
            with pytest.raises(TypeError):
                await storage.put("k", bad)
        with pytest.raises(TypeError):
            await storage.put({"ok": 1, "bad": float("nan")})
        return await storage.list()

    # A refused multi-put writes none of its pairs.
    assert await probe.run(scenario) == {}


async def test_values_are_copied_at_call_time(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        value = {"list": [1], "inner": {"n": 1}}
        await storage.put("k", value)
        value["list"].append(2)
        value["inner"]["n"] = 2
        first = await storage.get("k")
        assert first == {"list": [1], "inner": {"n": 1}}
        first["list"].append(3)
        assert (await storage.get("k"))["list"] == [1]
        many = await storage.get(["k"])
        many["k"]["inner"]["n"] = 9
        listed = await storage.list()
        listed["k"]["list"].clear()
        assert storage.kv.get("k") == {"list": [1], "inner": {"n": 1}}
        buffer = bytearray(b"abc")
        await storage.put("b", buffer)
        buffer[0] = 0
        assert await storage.get("b") == b"abc"
        return True

    assert await probe.run(scenario)
    assert await live_equals_log(probe) == {"k": {"list": [1], "inner": {"n": 1}}, "b": b"abc"}


async def test_values_survive_the_log(probe):
    stored = {
        "nul": "a\x00b",
        "bytes": b"\x00\xff",
        "lookalike": {"$bytes": "AAAA"},
        "nested": [{"$str": "x"}, {"k\x00": b""}],
        "float": 0.1,
        "big": 2**62,
        "unicode": "✓ 𝄞",
    }

    async def scenario(obj, request):
        await obj.ctx.storage.put(stored)
        return True

    assert await probe.run(scenario)
    assert await live_equals_log(probe) == stored

    async def read_back(obj, request):
        got = await obj.ctx.storage.get(list(stored))
        return {key: repr(value) for key, value in got.items()}

    assert await probe.run(read_back) == {key: repr(value) for key, value in stored.items()}


# -- limits -------------------------------------------------------------------------------


async def test_key_size_limit(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("k" * 2048, 1)
        await storage.put("é" * 1024, 1)
        for key, size in (("k" * 2049, 2049), ("é" * 1025, 2050), ("\U0001f600" * 513, 2052)):
            message = f"Keys cannot be larger than 2048 bytes. A key of size {size} was provided."
            with raises(ValueError, message):
                await storage.put(key, 1)
            with raises(ValueError, message):
                await storage.get(key)
            with raises(ValueError, message):
                await storage.get(["a", key])
            with raises(ValueError, message):
                await storage.delete(key)
            with raises(ValueError, message):
                await storage.put({"a": 1, key: 1})
            with raises(ValueError, message):
                storage.kv.put(key, 1)
            with raises(ValueError, message):
                storage.kv.get(key)
        return sorted(len(k) for k in await storage.list())

    assert await probe.run(scenario) == [1024, 2048]


async def test_value_size_limit_is_on_the_serialized_form(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("largest", "x" * 131070)  # 131,072 bytes with its quotes
        with raises(
            ValueError,
            "Values cannot be larger than 131072 bytes. A value of size 131073 was provided.",
        ):
            await storage.put("k", "x" * 131071)
        with raises(
            ValueError,
            "Values cannot be larger than 131072 bytes. A value of size 131074 was provided.",
        ):
            await storage.put({"ok": 1, "k": "é" * 65536})
        with pytest.raises(ValueError, match=r"^Values cannot be larger than 131072 bytes"):
            storage.kv.put("k", b"\x00" * 100_000)  # base64 makes it bigger than it looks
        return sorted(await storage.list())

    assert await probe.run(scenario) == ["largest"]


async def test_at_most_128_keys_per_call(probe):
    def message(count: int) -> str:
        return f"Maximum number of key value pairs is 128. {count} pairs were provided."

    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put({f"k{i:03}": i for i in range(128)})
        with raises(ValueError, message(129)):
            await storage.put({f"x{i:03}": i for i in range(129)})
        assert len(await storage.get([f"k{i:03}" for i in range(128)])) == 128
        with raises(ValueError, message(129)):
            await storage.get([f"k{i:03}" for i in range(129)])
        with raises(ValueError, message(200)):
            await storage.delete([f"k{i:03}" for i in range(200)])
        assert await storage.delete([f"k{i:03}" for i in range(128)]) == 128
        return await storage.list()

    assert await probe.run(scenario) == {}


# -- list -------------------------------------------------------------------------------------


LIST_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, KEYS),
    ({"start": "b"}, ["b", "ba", "bb", "c", "é", "\U0001f600"]),
    ({"start_after": "b"}, ["ba", "bb", "c", "é", "\U0001f600"]),
    ({"end": "b"}, ["", "a", "ab", "abc", "abd"]),
    ({"start": "ab", "end": "b"}, ["ab", "abc", "abd"]),
    ({"start_after": "ab", "end": "ba"}, ["abc", "abd", "b"]),
    ({"prefix": "ab"}, ["ab", "abc", "abd"]),
    ({"prefix": "b"}, ["b", "ba", "bb"]),
    ({"prefix": ""}, KEYS),
    ({"prefix": "zz"}, []),
    ({"prefix": "ab", "start": "abc"}, ["abc", "abd"]),
    ({"prefix": "ab", "start_after": "abc"}, ["abd"]),
    ({"prefix": "ab", "end": "abd"}, ["ab", "abc"]),
    ({"prefix": "ab", "start": "a"}, ["ab", "abc", "abd"]),
    ({"prefix": "ab", "end": "c"}, ["ab", "abc", "abd"]),
    ({"prefix": "b", "start": "c"}, []),
    ({"reverse": True}, list(reversed(KEYS))),
    ({"reverse": True, "start": "ab", "end": "b"}, ["abd", "abc", "ab"]),
    ({"reverse": True, "prefix": "b"}, ["bb", "ba", "b"]),
    ({"limit": 3}, ["", "a", "ab"]),
    ({"limit": 2, "reverse": True}, ["\U0001f600", "é"]),
    ({"limit": 2, "prefix": "ab", "reverse": True}, ["abd", "abc"]),
    ({"limit": 100, "start": "c"}, ["c", "é", "\U0001f600"]),
    ({"limit": 1, "start_after": "abd", "end": "bb"}, ["b"]),
    ({"start": "b", "end": "b"}, []),
    ({"start": "c", "end": "a"}, []),
    ({"start_after": "a", "end": "ab"}, []),
    ({"start": "é"}, ["é", "\U0001f600"]),
    ({"end": "\U0001f600"}, KEYS[:-1]),
]


@pytest.mark.parametrize(("options", "expected"), LIST_CASES, ids=[repr(c[0]) for c in LIST_CASES])
async def test_list_options(probe, options, expected):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put({key: f"v{key}" for key in KEYS})
        listed = await storage.list(**options)
        assert list(listed.values()) == [f"v{key}" for key in listed]
        synced = list(storage.kv.list(**options))
        assert synced == list(listed.items())
        return list(listed)

    assert await probe.run(scenario) == expected


async def test_list_order_is_utf8_byte_order(probe):
    keys = ["\uffff", "\U00010000", "z", "é", "\u00ff", "A", "a", "~", "\x7f"]

    async def scenario(obj, request):
        await obj.ctx.storage.put(dict.fromkeys(keys, 0))
        return list(await obj.ctx.storage.list())

    assert await probe.run(scenario) == sorted(keys, key=lambda k: k.encode("utf-8"))


async def test_list_option_errors(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("a", 1)
        with raises(TypeError, "list() cannot be called with both start and startAfter values."):
            await storage.list(start="a", start_after="b")
        with raises(TypeError, "list() cannot be called with both start and startAfter values."):
            storage.kv.list(start="a", start_after="a")
        for bad in (0, -1):
            with raises(TypeError, "List limit must be positive."):
                await storage.list(limit=bad)
            with raises(TypeError, "List limit must be positive."):
                storage.kv.list(limit=bad)
        return await storage.list(limit=1)

    assert await probe.run(scenario) == {"a": 1}


async def test_list_of_empty_storage(probe):
    async def scenario(obj, request):
        return [await obj.ctx.storage.list(), list(obj.ctx.storage.kv.list(prefix="x"))]

    assert await probe.run(scenario) == [{}, []]


# -- sync KV ----------------------------------------------------------------------------------


async def test_sync_kv_shares_the_keyspace(probe):
    async def scenario(obj, request):
        kv, storage = obj.ctx.storage.kv, obj.ctx.storage
        assert kv.get("k") is None
        assert kv.put("k", [1]) is None
        assert await storage.get("k") == [1]
        await storage.put("j", b"x")
        assert kv.get("j") == b"x"
        assert kv.delete("j") is True
        assert kv.delete("j") is False
        listed = kv.list()
        assert not isinstance(listed, dict | list)
        assert list(listed) == [("k", [1])]
        return True

    assert await probe.run(scenario)
    assert await live_equals_log(probe) == {"k": [1]}


# -- delete_all, sync -------------------------------------------------------------------------


async def test_delete_all_removes_keys_and_the_alarm(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put({"a": 1, "b": 2})
        await storage.set_alarm(4_102_444_800_000)  # far in the future
        assert await storage.delete_all() is None
        assert await storage.list() == {}
        assert await storage.get_alarm() is None
        await storage.delete_all()  # on empty storage: nothing to do, no error
        await storage.put("after", True)
        assert await storage.sync() is None
        return await storage.list()

    assert await probe.run(scenario) == {"after": True}
    state = await replay(probe.database_url, probe.object_id())
    assert state.alarm_ms is None
    assert await live_equals_log(probe) == {"after": True}


# -- transactions -----------------------------------------------------------------------------


async def test_transaction_commits_and_returns_its_result(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("balance", 10)

        async def move(txn):
            balance = await txn.get("balance")
            await txn.put({"balance": balance - 3, "moved": 3})
            assert await txn.list() == {"balance": 7, "moved": 3}
            assert await txn.delete("moved") is True
            await txn.put("moved", 3)
            return balance - 3

        assert await storage.transaction(move) == 7
        return await storage.list()

    assert await probe.run(scenario) == {"balance": 7, "moved": 3}
    assert await live_equals_log(probe) == {"balance": 7, "moved": 3}


async def test_transaction_rollback(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("keep", 1)

        async def undone(txn):
            await txn.put("temp", 1)
            await txn.delete("keep")
            await txn.set_alarm(4_102_444_800_000)
            txn.rollback()
            return "rolled back"

        assert await storage.transaction(undone) == "rolled back"
        assert await storage.get_alarm() is None
        return await storage.list()

    assert await probe.run(scenario) == {"keep": 1}
    assert await live_equals_log(probe) == {"keep": 1}


async def test_transaction_exception_rolls_back_and_propagates(probe):
    class Boom(Exception):
        pass

    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("keep", 1)

        async def failing(txn):
            await txn.put({"keep": 2, "temp": 3})
            raise Boom("nope")

        with pytest.raises(Boom):
            await storage.transaction(failing)
        await storage.put("after", 4)
        return await storage.list()

    assert await probe.run(scenario) == {"after": 4, "keep": 1}
    assert await live_equals_log(probe) == {"after": 4, "keep": 1}


async def test_nested_transaction_rollback_keeps_the_outer_writes(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage

        async def inner(txn):
            await txn.put("inner", 1)
            txn.rollback()

        async def outer(txn):
            await txn.put("outer", 1)
            await txn.transaction(inner)

        await storage.transaction(outer)
        return await storage.list()

    assert await probe.run(scenario) == {"outer": 1}
    assert await live_equals_log(probe) == {"outer": 1}


async def test_transaction_delete_all_and_operations_after_rollback(probe):
    async def scenario(obj, request):
        storage = obj.ctx.storage
        await storage.put("k", 1)

        async def body(txn):
            with raises(DurableObjectError, "Cannot call deleteAll() within a transaction"):
                await txn.delete_all()
            txn.rollback()
            with raises(DurableObjectError, "Cannot get on rolled back transaction"):
                await txn.get("k")
            with raises(DurableObjectError, "Cannot put on rolled back transaction"):
                await txn.put("k", 2)
            with raises(DurableObjectError, "Cannot delete on rolled back transaction"):
                await txn.delete("k")
            with raises(DurableObjectError, "Cannot list on rolled back transaction"):
                await txn.list()
            with raises(DurableObjectError, "Cannot rollback on rolled back transaction"):
                txn.rollback()
            return "done"

        assert await storage.transaction(body) == "done"
        return await storage.list()

    assert await probe.run(scenario) == {"k": 1}


async def test_a_failing_fetch_leaves_no_writes(probe):
    async def failing(obj, request):
        await obj.ctx.storage.put("half", 1)
        raise RuntimeError("handler failed")

    response = await probe.request(failing)
    assert response.status == 500
    # The exception is in the log; the client is not shown its text.
    assert "handler failed" not in await response.text()

    async def read(obj, request):
        return await obj.ctx.storage.list()

    assert await probe.run(read) == {}
    assert await live_equals_log(probe) == {}


async def test_storage_persists_across_objects_and_names(probe):
    async def write(obj, request):
        await obj.ctx.storage.put("who", obj.ctx.id.name)
        return True

    async def read(obj, request):
        return await obj.ctx.storage.get("who")

    assert await probe.run(write, "one")
    assert await probe.run(write, "two")
    assert await probe.run(read, "one") == "one"
    assert await probe.run(read, "two") == "two"
    assert await probe.run(read, "three") is None
