"""``durable fork`` and restores, as processes, on data made by a real node."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import aiohttp

from tests.cli.process import APPS, child_env, durable, run

LEDGER = str(APPS / "ledger.py")


async def fork(*args: str, env: dict[str, str]) -> Any:
    return await asyncio.to_thread(run, "fork", *args, env=env)


async def test_fork_a_served_objects_past_then_reach_it_by_name(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with durable("serve", LEDGER, "--port", "0", env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:

            async def get(query: str, name: str = "main") -> Any:
                async with session.get(f"{url}/ledger/{name}?{query}") as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            for n in range(3):
                then = await get(f"put=k{n}&value={n}")
            then = await get("alarm=4000000000000")
            seq = int(then["bookmark"])
            await get("put=k0&value=changed")
            await get("put=later&value=1")

            forked = await fork(
                "LEDGER/main",
                "--at",
                str(seq),
                "--as",
                "main@3",
                "--app",
                LEDGER,
                "--json",
                env=env,
            )
            assert forked.returncode == 0, forked.stderr
            result = json.loads(forked.stdout)
            assert result["seq"] == seq and result["name"] == "main@3"
            assert result["source"]["name"] == "main" and result["keys"] == 3
            assert result["alarm_ms"] == 4_000_000_000_000
            assert "@" in result["by"]

            # A client of the running node reaches the fork by name and finds the state of
            # the source after that event; the fork's own log starts at seq 1.
            seen = await get("", name="main@3")
            assert seen["storage"] == then["storage"] == {"k0": "0", "k1": "1", "k2": "2"}
            assert seen["alarm"] == 4_000_000_000_000
            # After object_forked and the request_received of this very request.
            assert seen["name"] == "main@3" and seen["bookmark"] == "0" * 19 + "2"
            assert (await get(""))["storage"]["k0"] == "changed"

            # Without the application, the binding's own name would give the fork an id
            # that no client of this application asks for: refused, with what to do.
            unkeyed = await fork("LEDGER/main", "--at", "1", "--as", "other", env=env)
            assert unkeyed.returncode == 1
            assert "is not of the namespace keyed 'LEDGER'" in unkeyed.stderr
            assert "--app" in unkeyed.stderr

            text = await fork(
                result["object_id"], "--at", "1", "--as", "again", "--app", LEDGER, env=env
            )
            assert text.returncode == 0, text.stderr
            assert text.stdout.startswith("Forked LEDGER/main@3 at seq 1 as LEDGER/again (id ")
            assert "3 storage keys and its alarm at 4000000000000 ms copied" in text.stdout

        assert await node.stop() == 0


async def test_refusals_say_why(database_url: str) -> None:
    """The refusals themselves are the history's (tests/history/test_history_fork.py); the
    command reports them as errors, without a traceback."""
    env = child_env(database_url=database_url)
    async with durable("serve", LEDGER, "--port", "0", env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            for name in ("main", "taken"):
                async with session.get(f"{url}/ledger/{name}?put=k&value=v") as response:
                    assert response.status == 200
        assert await node.stop() == 0
    app = ("--app", LEDGER)
    cases = [
        (("LEDGER/main", "--at", "1", "--as", "taken", *app), "exists already, with 2 events"),
        (("LEDGER/main", "--at", "2026-01-01T00:00", "--as", "x", *app), "has no time zone"),
    ]
    for args, message in cases:
        refused = await fork(*args, env=env)
        assert refused.returncode == 1, (args, refused.stdout)
        assert message in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    # As every history command words (and exits on) a point it cannot read.
    bad_point = await fork("LEDGER/main", "--at", "yesterday", "--as", "x", env=env)
    assert bad_point.returncode == 1 and "neither a seq nor an ISO 8601 time" in bad_point.stderr


async def test_a_restore_survives_a_killed_node(database_url: str) -> None:
    """The restore request is durable once it returns: a node killed before the object's
    next session leaves the restore to the next node, which does it when it wakes it."""
    env = child_env(database_url=database_url)
    # The next node takes the object once the killed one's lease has lapsed (1 s here).
    serve = ("serve", LEDGER, "--port", "0", "--lease-timeout", "1")
    async with durable(*serve, env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/ledger/main?put=a&value=1") as response:
                mark = (await response.json())["bookmark"]
            async with session.get(f"{url}/ledger/main?put=b&value=2") as response:
                assert response.status == 200
            async with session.get(f"{url}/ledger/main?restore={mark}") as response:
                assert response.status == 200
                undo = await response.text()
            async with session.get(f"{url}/ledger/main") as response:
                assert (await response.json())["storage"] == {"a": "1", "b": "2"}
        node.process.send_signal(signal.SIGKILL)
        assert await node.exited(30) == -signal.SIGKILL
    async with durable(*serve, env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # 503 while the killed node's lease runs out
                async with session.get(f"{url}/ledger/main") as response:
                    if response.status != 503:
                        assert response.status == 200
                        seen = await response.json()
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the object was not taken over within 10 s")
            assert seen["storage"] == {"a": "1"}
            assert seen["bookmark"] > undo > mark
        assert await node.stop() == 0
