"""Log lines name the object they are about by binding and name, not only by its id."""

from __future__ import annotations

import aiohttp

from tests.cli.process import ECHO, child_env, durable


async def test_log_lines_name_the_object(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with durable("serve", ECHO, "--port", "0", env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{url}/echo/lobby")
            object_id = (await ws.receive_str(timeout=10)).removeprefix("id ")
            await ws.close()
        line = (await node.wait_for(r"loaded in .*\[object=", 10)).string
        assert f"object=ECHO/lobby object_id={object_id}" in line
        assert await node.stop() == 0
