"""Shutdown sends the replies of committed work before closing connections with 1001."""

from __future__ import annotations

import aiohttp
from aiohttp import WSMsgType

from tests.cli.process import ECHO, child_env, durable
from tests.support import fold_all


async def test_frames_of_committed_work_are_sent_before_1001(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with durable("serve", ECHO, "--port", "0", env=env) as node:
        url = await node.serving()
        acknowledged: set[str] = set()
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{url}/echo/burst")
            object_id = (await ws.receive_str(timeout=10)).removeprefix("id ")
            for n in range(200):
                await ws.send_str(f"b{n}")
            node.process.terminate()
            while (message := await ws.receive(timeout=20)).type is WSMsgType.TEXT:
                acknowledged.add(message.data.removeprefix("echo "))
            assert ws.close_code == 1001
        assert await node.exited(timeout=30) == 0
    state = await fold_all(database_url, object_id)
    stored = {k.removeprefix("m:") for k in state.storage if k.startswith("m:")}
    # Work committed during the shutdown had its frames sent before the 1001.
    assert stored == acknowledged, (len(stored), len(acknowledged))
