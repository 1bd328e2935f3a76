"""The output gate holds for what handlers log: a node killed right after its client got an
acknowledgement keeps the lines of every turn the client saw answered, and of no other."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import asyncpg
import pytest

from tests.cluster.support import cluster_node, connect, said

pytestmark = pytest.mark.slow

#: Messages sent, while the node dies with turns of them still running or committing.
SENT = 5000


async def test_a_node_killed_after_an_ack_keeps_the_lines_of_every_turn_answered(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with (
        cluster_node(database_url, "owner", "--hibernate-after", "60") as node,
        aiohttp.ClientSession() as http,
    ):
        a = await connect(http, node, "a")

        async def send_all() -> None:
            for n in range(SENT):
                await a.send(f"m{n}")

        # Killed while it runs and commits turns: some acknowledged, some not yet.
        sending = asyncio.ensure_future(send_all())
        await a.expect("ack m100")
        node.process.kill()
        await a.wait_closed()
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        assert await node.exited(10) == -9
    # Every frame the client got left after its turn's commit: that turn's line is kept.
    acked = [frame.removeprefix("ack ") for frame in a.frames if frame.startswith("ack ")]
    lines = await said(sql)
    assert acked and {f"a said {text}" for text in acked} <= {line for _, line in lines}
    # And a line is kept exactly when its turn's events are: each with its turn's seq (the
    # message, then the room's write).
    rows = await sql.fetch(
        "SELECT e.seq, e.data FROM events AS e JOIN objects AS o USING (object_id)"
        " WHERE o.name = 'r' AND e.type = 'message_received' ORDER BY e.seq"
    )
    recorded = [(row["seq"] + 1, f"a said {json.loads(row['data'])['text']}") for row in rows]
    assert lines == recorded
    print(f"{len(acked)} acknowledged, {len(recorded)} recorded of {SENT} when the node died")
