"""uvloop is an optional speed-up: a node on either loop serves, hibernates and wakes alike."""

from __future__ import annotations

import sys

import aiohttp
import pytest

from service import tuning
from tests.cli.process import ECHO, child_env, durable
from tests.support import eventually


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_node_serves_and_wakes_on_either_event_loop(database_url: str, loop: str) -> None:
    pytest.importorskip("uvloop")
    env = child_env({"DURABLE_EVENT_LOOP": loop}, database_url=database_url)
    args = ("serve", ECHO, "--port", "0", "--hibernate-after", "0.3")
    async with durable(*args, env=env) as node, aiohttp.ClientSession() as session:
        url = await node.serving()
        assert f"(event loop: {loop})" in node.output
        ws = await session.ws_connect(f"{url}/echo/looped")
        assert (await ws.receive_str(timeout=10)).startswith("id ")
        await ws.send_str("before")
        assert await ws.receive_str(timeout=10) == "echo before"

        async def hibernated() -> bool:
            async with session.get(f"{url}/metrics") as response:
                return "durable_hibernated_objects 1.0" in await response.text()

        await eventually(hibernated, timeout=10)
        await ws.send_str("after")  # wakes the object through the inbox and NOTIFY
        assert await ws.receive_str(timeout=10) == "echo after"
        await ws.close()
        assert await node.stop() == 0


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert tuning.loop_factory("auto") is None
    assert tuning.loop_factory("asyncio") is None
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        tuning.loop_factory("uvloop")
