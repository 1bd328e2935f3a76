"""`durable rerun`: a real node records a real run (frames, a request, an alarm, closes, a wake),
then the command re-executes it against the same code and against changed code."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp import WSMsgType

from tests.cli.process import APPS, Durable, child_env, durable
from tests.support import eventually

BOARD = str(APPS / "board.py")
CHANGED = str(APPS / "board_changed.py")
EXIT_DIVERGED = 3
INBOUND = ("message_received", "request_received", "alarm_fired", "websocket_closed")


@dataclass
class Recorded:
    """The run the node recorded: the object's events, and where its landmarks are."""

    object_id: str
    events: list[tuple[int, str, dict[str, Any]]]

    def seq_of(self, kind: str, **fields: Any) -> int:
        """The seq of the first event of ``kind`` whose data has ``fields``."""
        for seq, type_, data in self.events:
            if type_ == kind and all(data.get(k) == v for k, v in fields.items()):
                return seq
        raise AssertionError(f"no {kind} with {fields} in {self.events}")

    def inbound(self, first: int = 1, last: int | None = None) -> list[int]:
        last = last if last is not None else len(self.events)
        return [s for s, t, _ in self.events if t in INBOUND and first <= s <= last]


async def _events(database_url: str) -> Recorded:
    connection = await asyncpg.connect(database_url)
    try:
        object_id = await connection.fetchval(
            "SELECT object_id FROM objects WHERE binding = 'BOARD' AND name = 'main'"
        )
        rows = await connection.fetch(
            "SELECT seq, type, data::text AS data FROM events WHERE object_id = $1 ORDER BY seq",
            object_id,
        )
    finally:
        await connection.close()
    return Recorded(object_id, [(r["seq"], r["type"], json.loads(r["data"])) for r in rows])


async def _hibernated(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    return "durable_live_objects 0.0" in text


async def _note(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await ws.receive_str(timeout=10))
    return data


async def record_a_run(
    node: Durable, session: aiohttp.ClientSession
) -> aiohttp.ClientWebSocketResponse:
    """Real clients doing real work on BOARD/main; returns ann's socket, still open."""
    url = node.url
    ann = await session.ws_connect(f"{url}/board/main?user=ann")
    assert await _note(ann) == {"notes": 0}
    bob = await session.ws_connect(f"{url}/board/main?user=bob")
    assert await _note(bob) == {"notes": 0}
    async with session.post(
        f"{url}/board/main?user=carl",
        data="from http",
        headers={"Authorization": "Bearer secret-token", "Cookie": "session=s3cr3t"},
    ) as response:
        assert await response.json() == {"notes": 1}
    for ws, text in ((ann, "first"), (bob, "second")):
        await ws.send_str(text)
        for reader in (ann, bob):
            assert (await _note(reader))["note"]["text"] == text
    await ann.send_str("remind")
    assert await ann.receive_str(timeout=10) == "reminder set"
    for reader in (ann, bob):  # the alarm's run, about 200 ms later
        assert await _note(reader) == {"reminder": 3}
    # The object sleeps; the next frame wakes it (its constructor runs again).
    await eventually(lambda: _hibernated(session, url), timeout=15, interval=0.1)
    await bob.send_str("third")
    await ann.send_bytes(b"fourth")
    for text in ("third", "fourth"):
        for reader in (ann, bob):
            assert (await _note(reader))["note"]["text"] == text
    await bob.send_str("bye")
    closing = await bob.receive(timeout=10)
    assert closing.type is WSMsgType.CLOSE and closing.data == 4000
    await bob.close()
    async with session.get(f"{url}/board/main") as response:
        assert await response.json() == {"notes": 5}
    return ann


async def rerun(*args: str, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run `durable rerun ...` to completion: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "rerun",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _serve(env: Mapping[str, str]) -> Any:
    args = ("serve", BOARD, "--port", "0", "--hibernate-after", "0.3", "--node-id", "rec")
    return durable(*args, env=env)


async def test_unchanged_code_agrees_with_the_recorded_run(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with _serve(env) as node, aiohttp.ClientSession() as session:
        await node.serving()
        ann = await record_a_run(node, session)
        await ann.close()
        await eventually(lambda: _hibernated(session, node.url), timeout=15, interval=0.1)
    recorded = await _events(database_url)

    # Every kind of inbound work is in the log, in the turn it started.
    kinds = [t for _, t, _ in recorded.events]
    assert {"request_received", "alarm_fired", "message_received", "websocket_closed"} <= set(kinds)
    post = recorded.events[recorded.seq_of("request_received", method="POST") - 1][2]
    assert post["text"] == "from http" and post["body_bytes"] == len("from http")
    assert post["headers"]["Authorization"] == "[redacted]"
    assert post["headers"]["Cookie"] == "[redacted]"
    fired = recorded.seq_of("alarm_fired")
    assert kinds[fired - 1 : fired + 1] == ["alarm_fired", "alarm_deleted"]
    assert recorded.events[fired - 1][2]["retry_count"] == 0

    code, out, err = await rerun("BOARD/main", "--app", BOARD, env=env)
    assert code == 0, out + err
    inbound = recorded.inbound()
    assert out.strip() == (
        f"BOARD/main: no divergence in {len(inbound)} inbound events "
        f"(seq {inbound[0]}..{inbound[-1]})"
    )

    # By id, as JSON: the same verdict, one JSON object.
    code, out, err = await rerun(recorded.object_id, "--app", BOARD, "--json", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert report["diverged"] is False and report["divergence"] is None
    assert report["inbound_events_agreed"] == len(inbound)
    assert (report["from"], report["to"]) == (1, len(recorded.events))


async def test_a_changed_handler_diverges_at_the_inbound_event_that_shows_it(
    database_url: str,
) -> None:
    env = child_env(database_url=database_url)
    async with _serve(env) as node, aiohttp.ClientSession() as session:
        await node.serving()
        ann = await record_a_run(node, session)
        await ann.close()
    recorded = await _events(database_url)
    third = recorded.seq_of("message_received", text="third")

    # A different value written: the frame "third" is where it shows, both sides given.
    code, out, err = await rerun("BOARD/main", "--app", CHANGED, "--json", env=env)
    assert code == EXIT_DIVERGED, out + err
    divergence = json.loads(out)["divergence"]
    assert divergence["inbound"]["seq"] == third
    assert divergence["inbound"]["type"] == "message_received"
    at = divergence["at_seq"]
    note = recorded.events[at - 1][2]["entries"]
    (key,) = note
    assert note[key]["text"] == "third"
    (logged,) = [e for e in divergence["recorded"] if e["seq"] == at]
    (made,) = [e for e in divergence["rerun"] if e["seq"] == at]
    assert logged["data"]["entries"][key]["text"] == "third"
    assert made["data"]["entries"][key]["text"] == "THIRD"
    assert '"third"' in divergence["reason"] and '"THIRD"' in divergence["reason"]
    # The broadcast it would have made is there for context, with the changed text.
    assert any("THIRD" in (sent.get("text") or "") for sent in divergence["sent"])
    assert json.loads(out)["inbound_events_agreed"] == len(recorded.inbound(last=third - 1))

    # A different close: the frame "bye" is where it shows, in close_sent.
    code, out, err = await rerun("BOARD/main", "--app", f"{CHANGED}:closing", env=env)
    assert code == EXIT_DIVERGED, out + err
    bye = recorded.seq_of("message_received", text="bye")
    close_sent = recorded.seq_of("close_sent")
    assert f"first divergence at inbound event seq {bye} (message_received)" in out
    assert "close_sent.code: the log has 4000, the rerun 4001" in out
    assert f"> seq {close_sent:<6} close_sent" in out
    assert 'reason="see you"' in out  # the rerun's side, and its close among the sends
    assert "close " in out.split("sent by the rerun")[1]


async def test_ranges_start_and_end_where_asked(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with _serve(env) as node, aiohttp.ClientSession() as session:
        await node.serving()
        await record_a_run(node, session)
    recorded = await _events(database_url)
    third = recorded.seq_of("message_received", text="third")
    fourth = recorded.inbound(first=third + 1)[0]

    # Up to the frame before "third": the changed code agrees there.
    code, out, err = await rerun(
        "BOARD/main", "--app", CHANGED, "--to", str(third - 1), "--json", env=env
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["inbound_events_agreed"] == len(recorded.inbound(last=third - 1))
    assert report["last_inbound_seq"] == recorded.inbound(last=third - 1)[-1]

    # From the frame after it: the state is rebuilt with "third" as the log has it.
    code, out, err = await rerun(
        "BOARD/main", "--app", CHANGED, "--from", str(fourth), "--json", env=env
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["first_inbound_seq"] == fourth
    assert report["inbound_events_agreed"] == len(recorded.inbound(first=fourth))

    # Exactly "third": the divergence, and nothing else.
    code, out, err = await rerun(
        "BOARD/main", "--app", CHANGED, "--from", str(third), "--to", str(third), env=env
    )
    assert code == EXIT_DIVERGED, out + err
    assert f"first divergence at inbound event seq {third}" in out
    assert "after 0 inbound events that agree" in out

    # Points that are not there, and objects that are not: exit 1 with an error.
    last = len(recorded.events)
    closed = recorded.seq_of("websocket_closed", code=4000)
    for args, says in (
        (("--from", str(third + 1)), "not an inbound event"),
        (("--from", str(closed)), "recorded after what its handler wrote: start at the"),
        (("--to", str(last + 1)), f"has events 1 to {last}"),
        (("--from", "0"), "outside them"),
    ):
        code, out, err = await rerun("BOARD/main", "--app", BOARD, *args, env=env)
        assert code == 1, out + err
        assert says in err and out == ""
    code, _, err = await rerun("BOARD/nobody", "--app", BOARD, env=env)
    assert code == 1 and "no object of binding BOARD is named 'nobody'" in err
    code, _, err = await rerun("CHAT/main", "--app", BOARD, env=env)
    assert code == 1 and "no object of binding CHAT" in err


async def test_a_rerun_writes_nothing_and_sends_nothing(database_url: str) -> None:
    env = child_env(database_url=database_url)
    async with _serve(env) as node, aiohttp.ClientSession() as session:
        await node.serving()
        ann = await record_a_run(node, session)
        before = await _events(database_url)

        # Ann stays connected while her object's work is rerun, twice, the second time
        # by code that would send her other frames and close another socket differently.
        for app in (BOARD, f"{CHANGED}:closing", CHANGED):
            code, out, err = await rerun("BOARD/main", "--app", app, env=env)
            assert code in (0, EXIT_DIVERGED), out + err
        with_sends = json.loads((await rerun("BOARD/main", "--app", CHANGED, "--json", env=env))[1])
        assert with_sends["divergence"]["sent"], "the rerun did make sends, to no one"
        assert not ann.closed
        try:
            got = await ann.receive(timeout=1.0)
        except TimeoutError:
            got = None
        assert got is None, f"a client received {got} during a rerun"

        after = await _events(database_url)
        assert after.events == before.events
        # The live object still works: the log goes on from where it was.
        await ann.send_str("after the reruns")
        assert (await _note(ann))["note"]["text"] == "after the reruns"
        await ann.close()
    assert len((await _events(database_url)).events) > len(before.events)
