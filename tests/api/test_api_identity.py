"""Ids through ``env``, stubs between objects, the default router, and object lifecycle."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, ClassVar

import pytest

from service import Application, DurableObject, DurableObjectId, DurableObjectStub, Response
from service.events import values
from tests.support import replay, serve

INVALID = "Invalid Durable Object ID: must be 64 hex digits"
WRONG_NAMESPACE = "Durable Object ID is not valid for this namespace."


def raises(kind: type[BaseException], message: str) -> Any:
    return pytest.raises(kind, match=f"^{re.escape(message)}$")


class Directory(DurableObject):
    """``.../whoami`` answers with its id; ``.../call/<name>`` asks another object."""

    async def fetch(self, request):
        parts = request.path.strip("/").split("/")
        if "call" in parts:
            target = parts[parts.index("call") + 1]
            stub = self.env.DIR.get_by_name(target)
            answer = await stub.fetch("http://internal/whoami")
            return Response.json({"me": self.ctx.id.name, "they": json.loads(await answer.text())})
        if "call-unique" in parts:
            unique = self.env.DIR.new_unique_id()
            stub = self.env.DIR.get(unique)
            answer = await stub.fetch("http://internal/whoami", method="POST", body="x")
            return Response.json({"made": str(unique), "they": json.loads(await answer.text())})
        return Response.json(
            {
                "name": self.ctx.id.name,
                "id": self.ctx.id.to_string(),
                "method": request.method,
                "body": await request.text(),
                "path": request.path,
            }
        )


class Other(DurableObject):
    pass


def directory_app() -> Application:
    return Application({"DIR": Directory, "OTHER": Other})


# -- ids and stubs through env ------------------------------------------------------------


async def test_ids_through_env(probe):
    async def scenario(obj, request):
        ns = obj.env.PROBE
        own = ns.id_from_name("probe")
        assert obj.ctx.id == own and obj.ctx.id.equals(own)
        assert obj.ctx.id.name == "probe"
        assert isinstance(own, DurableObjectId)
        text = own.to_string()
        assert re.fullmatch("[0-9a-f]{64}", text)
        assert ns.id_from_name("probe").to_string() == text
        assert ns.id_from_name("other") != own
        parsed = ns.id_from_string(text)
        assert parsed == own and parsed.name is None
        assert ns.id_from_string(text.upper()) == own
        with raises(TypeError, INVALID):
            ns.id_from_string(text[:-1])
        with raises(TypeError, INVALID):
            ns.id_from_string(text + "0")
        with raises(TypeError, INVALID):
            ns.id_from_string("z" * 64)
        tampered = text[:-1] + ("0" if text[-1] != "0" else "1")
        with raises(TypeError, WRONG_NAMESPACE):
            ns.id_from_string(tampered)
        uniques = {ns.new_unique_id().to_string() for _ in range(100)}
        assert len(uniques) == 100
        for unique in list(uniques)[:5]:
            assert ns.id_from_string(unique).name is None
        with raises(TypeError, "Jurisdiction restrictions are not implemented."):
            ns.new_unique_id(jurisdiction="eu")
        stub = ns.get_by_name("someone")
        assert isinstance(stub, DurableObjectStub)
        assert (stub.id, stub.name) == (ns.id_from_name("someone"), "someone")
        by_id = ns.get(ns.id_from_string(stub.id.to_string()))
        assert by_id.id == stub.id and by_id.name is None
        return text

    assert await probe.run(scenario) == probe.object_id()


async def test_ids_of_one_namespace_are_refused_by_another(database_url):
    async with serve(database_url, directory_app()) as node:
        env = node.runtime.env
        foreign = env.OTHER.id_from_name("x").to_string()
        with raises(TypeError, WRONG_NAMESPACE):
            env.DIR.id_from_string(foreign)
        assert env.DIR.id_from_name("x") != env.OTHER.id_from_name("x")


async def test_making_stubs_sends_nothing(database_url):
    async with serve(database_url, directory_app()) as node:
        env = node.runtime.env
        env.DIR.get_by_name("lazy")
        env.DIR.get(env.DIR.new_unique_id())
        await asyncio.sleep(0.1)
        assert node.runtime.activations == {}


async def test_stub_fetch_from_one_object_to_another(database_url):
    async with serve(database_url, directory_app()) as node:
        response = await node.client.get("/dir/alice/call/bob")
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["me"] == "alice"
        assert body["they"]["name"] == "bob"
        assert body["they"]["id"] == str(node.runtime.env.DIR.id_from_name("bob"))
        assert body["they"]["path"] == "/whoami"


async def test_stub_fetch_to_a_unique_object(database_url):
    async with serve(database_url, directory_app()) as node:
        response = await node.client.get("/dir/alice/call-unique")
        body = await response.json()
        assert body["they"]["id"] == body["made"]
        assert body["they"]["name"] is None
        assert (body["they"]["method"], body["they"]["body"]) == ("POST", "x")
        by_id = await node.client.get(f"/dir/by-id/{body['made']}/whoami")
        assert (await by_id.json())["id"] == body["made"]


async def test_stub_fetch_from_outside_an_object(database_url):
    async with serve(database_url, directory_app()) as node:
        stub = node.runtime.env.DIR.get_by_name("carol")
        response = await stub.fetch("http://internal/whoami")
        assert response.status == 200
        assert json.loads(await response.text())["name"] == "carol"


# -- the default router -----------------------------------------------------------------------


async def test_route_by_name_and_by_id(database_url):
    async with serve(database_url, directory_app()) as node:
        client = node.client
        named = await (await client.get("/dir/alice/whoami")).json()
        assert named["name"] == "alice"
        assert named["path"] == "/dir/alice/whoami"
        same = await (await client.get("/DIR/alice")).json()  # binding is case-insensitive
        assert same["id"] == named["id"]
        by_id = await client.get(f"/dir/by-id/{named['id'].upper()}/whoami")
        assert by_id.status == 200
        body = await by_id.json()
        assert body["id"] == named["id"]
        # The object keeps the name it was first reached by.
        assert body["name"] == "alice"
        spaced = await (await client.get("/dir/two%20words")).json()
        assert spaced["name"] == "two words"


async def test_route_errors(database_url):
    async with serve(database_url, directory_app()) as node:
        client = node.client
        unknown = await client.get("/nope/x")
        assert unknown.status == 404
        assert await unknown.text() == (
            "Not found: no object binding matches '/nope/x'. Routes: /dir/<name>, /other/<name>"
        )
        bad = await client.get("/dir/by-id/xyz")
        assert bad.status == 400
        assert await bad.text() == f"Bad object id: {INVALID}"
        foreign_id = node.runtime.env.OTHER.id_from_name("x").to_string()
        foreign = await client.get(f"/dir/by-id/{foreign_id}")
        assert foreign.status == 400
        assert await foreign.text() == f"Bad object id: {WRONG_NAMESPACE}"
        no_name = await client.get("/dir/")
        assert no_name.status == 404
        assert await no_name.text() == "Missing object name: use /dir/<name>"
        no_id = await client.get("/dir/by-id")
        assert no_id.status == 400
        assert await no_id.text() == "Missing object id: use /dir/by-id/<id>"
        root = await client.get("/")
        assert root.status == 404
        assert node.runtime.activations == {}


async def test_route_by_unknown_id_of_the_right_namespace(database_url):
    async with serve(database_url, directory_app()) as node:
        fresh = node.runtime.env.DIR.new_unique_id().to_string()
        response = await node.client.get(f"/dir/by-id/{fresh}/whoami")
        assert response.status == 200
        assert (await response.json()) == {
            "name": None,
            "id": fresh,
            "method": "GET",
            "body": "",
            "path": f"/dir/by-id/{fresh}/whoami",
        }


# -- block_concurrency_while -------------------------------------------------------------------


class Warm(DurableObject):
    """Loads itself in ``block_concurrency_while`` from the constructor."""

    constructed: ClassVar[int] = 0

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        Warm.constructed += 1
        self.loaded: Any = None
        self.init = ctx.block_concurrency_while(self._load)

    async def _load(self):
        await asyncio.sleep(0.2)
        self.loaded = await self.ctx.storage.get("count") or 0
        return "warm"

    async def fetch(self, request):
        action = request.query.get("do")
        if action == "background":
            # Not awaited: the next delivery still waits for it.
            self.ctx.block_concurrency_while(self._slow_increment)
            return Response.json("started")
        if action == "await":
            result = await self.ctx.block_concurrency_while(self._increment)
            return Response.json(result)
        if action == "fail":
            await self.ctx.block_concurrency_while(self._fail)
        return Response.json(
            {"init": await self.init, "loaded": self.loaded, "constructed": Warm.constructed}
        )

    async def _increment(self):
        await self.ctx.storage.put("count", (await self.ctx.storage.get("count") or 0) + 1)
        return await self.ctx.storage.get("count")

    async def _slow_increment(self):
        await asyncio.sleep(0.3)
        self.loaded += 100
        return await self._increment()

    async def _fail(self):
        await self.ctx.storage.put("count", -1)
        raise RuntimeError("init failed")


@pytest.fixture
def _reset_warm():
    Warm.constructed = 0


async def test_block_concurrency_while_from_the_constructor(database_url, _reset_warm):
    async with serve(database_url, Application({"WARM": Warm})) as node:
        first = await (await node.client.get("/warm/w")).json()
        assert first == {"init": "warm", "loaded": 0, "constructed": 1}
        assert await (await node.client.get("/warm/w?do=await")).json() == 1
        assert await (await node.client.get("/warm/w?do=await")).json() == 2
        started = await node.client.get("/warm/w?do=background")
        assert await started.json() == "started"
        after = await (await node.client.get("/warm/w")).json()
        assert after["loaded"] == 100
        object_id = str(node.runtime.env.WARM.id_from_name("w"))
        state = await replay(database_url, object_id)
        assert values.decode(state.storage["count"]) == 3


async def test_block_concurrency_while_failure_resets_the_object(database_url, _reset_warm):
    async with serve(database_url, Application({"WARM": Warm})) as node:
        assert (await (await node.client.get("/warm/w?do=await")).json()) == 1
        failed = await node.client.get("/warm/w?do=fail")
        assert failed.status >= 500
        after = await (await node.client.get("/warm/w")).json()
        assert after["constructed"] == 2
        assert after["loaded"] == 1  # the failed callback's write is gone
        object_id = str(node.runtime.env.WARM.id_from_name("w"))
        state = await replay(database_url, object_id)
        assert values.decode(state.storage["count"]) == 1


# -- abort ------------------------------------------------------------------------------------


class Fragile(DurableObject):
    instances: ClassVar[int] = 0

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        Fragile.instances += 1
        self.instance = Fragile.instances
        self.memory: list[str] = []

    async def fetch(self, request):
        storage = self.ctx.storage
        action = request.query.get("do")
        if action == "write":
            await storage.put("kept", request.query["v"])
            self.memory.append(request.query["v"])
        elif action == "abort":
            await storage.put("lost", True)
            self.ctx.abort(request.query.get("reason"))
        return Response.json(
            {"instance": self.instance, "memory": self.memory, "storage": await storage.list()}
        )


async def test_abort_resets_the_object(database_url):
    Fragile.instances = 0
    async with serve(database_url, Application({"FRAGILE": Fragile})) as node:
        client = node.client
        written = await (await client.get("/fragile/f?do=write&v=a")).json()
        assert written == {"instance": 1, "memory": ["a"], "storage": {"kept": "a"}}
        aborted = await client.get("/fragile/f?do=abort&reason=enough")
        assert aborted.status == 503
        assert "enough" in await aborted.text()
        fresh = await (await client.get("/fragile/f")).json()
        assert fresh == {"instance": 2, "memory": [], "storage": {"kept": "a"}}
        object_id = str(node.runtime.env.FRAGILE.id_from_name("f"))
        state = await replay(database_url, object_id)
        assert {k: values.decode(v) for k, v in state.storage.items()} == fresh["storage"]
        default = await client.get("/fragile/f?do=abort")
        assert default.status == 503
        assert "Application called abort() to reset Durable Object." in await default.text()
        again = await (await client.get("/fragile/f")).json()
        assert again["instance"] == 3 and again["storage"] == {"kept": "a"}
