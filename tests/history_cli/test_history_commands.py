"""The history commands as processes, on a chat room a real node served to real clients.

One node serves one database for the whole module; the scenario (alice and bob join and
talk, carol comes and goes, alice says bye) runs once, and each test reads what it left.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import pytest_asyncio
from pytest_postgresql.executors.noop import NoopExecutor

from service.events.values import encode_str
from service.history import replay
from service.store.event_store import EventStore
from tests.cli.process import durable
from tests.history_cli.support import Chat, chat_node, module_database, run
from tests.support import _WithoutSnapshots

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The chat room's frames, as its page sends them.
HELLO = '{"type": "message", "text": "hello bob"}'


@pytest.fixture(scope="module")
def chat_database(postgresql_template: NoopExecutor) -> Iterator[str]:
    with module_database(postgresql_template) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chat(chat_database: str) -> AsyncIterator[Chat]:
    """The room ``CHAT/lobby`` after its scenario, its node still serving alice and bob."""
    async with chat_node(
        chat_database, "--snapshot-every", "5", "--hibernate-after", "600", "--heartbeat", "0"
    ) as room:
        await room.mark("empty")
        await room.join("alice")
        await room.join("bob")
        await room.mark("both")
        await room.say("alice", "hello bob")
        await room.say("bob", "hi alice")
        await room.mark("talked")
        await room.join("carol")
        await room.mark("carol in")
        await room.leave("carol")
        await room.mark("carol out")
        await room.say("alice", "bye")
        await room.mark("end")
        yield room


async def test_objects_lists_the_room_with_its_sockets_and_owner(chat: Chat) -> None:
    result = await run("objects", env=chat.env)
    assert result.code == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if "lobby" in line]
    cells = row.split()
    assert cells[:2] == ["CHAT", "lobby"]
    assert str(chat.seqs["end"]) in cells and "live" in cells and "history-node" in cells
    assert cells[cells.index("live") + 1] == "2"  # alice and bob; carol left
    assert "Database:" in result.stderr and "Database:" not in result.stdout

    shaped = await run("objects", "--binding", "CHAT", "--json", env=chat.env)
    (lobby,) = shaped.json_lines()
    assert lobby["label"] == "CHAT/lobby" and lobby["last_seq"] == chat.seqs["end"]
    assert (lobby["live"], lobby["open_sockets"], lobby["owner_node"]) == (True, 2, "history-node")
    assert set(lobby) == {
        "object_id", "binding", "name", "label", "created_at", "last_seq", "last_activity",
        "live", "owner_node", "open_sockets",
    }  # fmt: skip
    assert (await run("objects", "--hibernated", "--json", env=chat.env)).stdout == ""
    assert (await run("objects", "--binding", "GAME", "--json", env=chat.env)).stdout == ""
    # By a part of the name, in any case.
    found = await run("objects", "--name", "OBB", "--json", env=chat.env)
    assert [o["label"] for o in found.json_lines()] == ["CHAT/lobby"]
    assert (await run("objects", "--name", "lobbyist", "--json", env=chat.env)).stdout == ""
    empty = await run("objects", "--name", "", env=chat.env)
    assert empty.code == 1
    assert "error: --name is empty: give a part of a name or leave it out" in empty.stderr


async def test_events_show_what_was_said_and_by_whom(chat: Chat) -> None:
    result = await run("events", "CHAT/lobby", env=chat.env)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == chat.seqs["end"]
    said = [line for line in lines if "message_received" in line]
    assert len(said) == 3
    assert said[0].endswith(f"alice: sent {HELLO}")
    assert said[1].endswith('bob: sent {"type": "message", "text": "hi alice"}')
    accepted = [line for line in lines if "websocket_accepted" in line]
    assert len(accepted) == 3 and "tags room:lobby, user:carol" in accepted[2]
    assert any("storage_put" in line and '"text":"hello bob"' in line for line in lines)
    (closed,) = [line for line in lines if "websocket_closed" in line]
    assert re.search(r"carol: socket \S+ closed: 1000", closed)

    shaped = await run("events", "CHAT/lobby", "--type", "message_received", "--json", env=chat.env)
    frames = shaped.json_lines()
    assert [(f["sender"], f["data"]["text"]) for f in frames] == [
        ("alice", encode_str(HELLO)),
        ("bob", '{"type": "message", "text": "hi alice"}'),
        ("alice", '{"type": "message", "text": "bye"}'),
    ]
    assert frames[0]["sender_attachment"] == {"username": "alice"}
    assert frames[0]["object"] == "CHAT/lobby" and frames[0]["type"] == "message_received"
    assert [f["seq"] for f in frames] == sorted(f["seq"] for f in frames)


async def test_events_in_a_range_of_seqs_or_times(chat: Chat) -> None:
    first, last = chat.seqs["both"] + 1, chat.seqs["talked"]
    by_seq = await run(
        "events", "CHAT/lobby", "--since", str(first), "--until", str(last), "--json",
        env=chat.env,
    )  # fmt: skip
    seqs = [e["seq"] for e in by_seq.json_lines()]
    assert seqs == list(range(first, last + 1))
    by_time = await run(
        "events", "CHAT/lobby", "--since", chat.times["both"].isoformat(),
        "--until", chat.times["talked"].isoformat(), "--json", env=chat.env,
    )  # fmt: skip
    assert [e["seq"] for e in by_time.json_lines()] == seqs
    nothing = await run("events", "CHAT/lobby", "--until", chat.times["empty"].isoformat(),
                        env=chat.env)  # fmt: skip
    assert nothing.code == 0 and nothing.stdout == ""
    assert "no events of CHAT/lobby in that range" in nothing.stderr


async def test_state_at_a_seq_equals_the_fold_of_every_event_up_to_it(chat: Chat) -> None:
    store = EventStore(chat.database_url, "oracle")
    await store.open()
    try:
        object_id = (await chat.sql("SELECT object_id FROM objects WHERE name = 'lobby'"))[0][0]
        seqs = [chat.seqs[point] for point in ("both", "talked", "carol in", "end")]
        results = await asyncio.gather(
            *(run("state", "CHAT/lobby", "--at", str(seq), "--json", env=chat.env) for seq in seqs)
        )
        for seq, result in zip(seqs, results, strict=True):
            assert result.code == 0, result.stderr
            (shown,) = result.json_lines()
            oracle = await replay.state(_WithoutSnapshots(store), object_id, until_seq=seq)
            expected = oracle.state
            assert shown["seq"] == seq and shown["messages"] == expected.messages
            assert shown["storage"] == dict(expected.storage)
            assert [(s["socket_id"], s["tags"], s["attachment"]) for s in shown["sockets"]] == [
                (s.socket_id, list(s.tags), s.attachment) for s in expected.sockets.values()
            ]
            assert shown["auto_response"] == {"request": "ping", "response": "pong"}
            assert shown["snapshot_seq"] + shown["folded"] == seq
    finally:
        await store.close()
    # The node snapshots every 5 events and keeps the two newest: the end starts from one.
    latest = (await run("state", "CHAT/lobby", "--json", env=chat.env)).json_lines()[0]
    assert latest["seq"] == chat.seqs["end"] and latest["snapshot_seq"] > 0
    users = {s["attachment"]["username"] for s in latest["sockets"]}
    assert users == {"alice", "bob"}


async def test_state_as_a_table_says_where_the_replay_started(chat: Chat) -> None:
    at = chat.times["carol in"].isoformat()
    result = await run("state", "CHAT/lobby", "--at", at, env=chat.env)
    assert result.code == 0, result.stderr
    text = result.stdout
    assert re.search(rf"after seq\s+{chat.seqs['carol in']} of {chat.seqs['end']}\n", text)
    assert re.search(r"replay\s+from (seq 0|snapshot at seq \d+), \d+ events folded", text)
    assert "auto-response  'ping' -> 'pong'" in text
    assert "sockets (3 open)" in text and "user:carol" in text
    assert '{"username":"carol"}' in text
    assert re.search(r"message:000000000002\s+\{.*\"text\":\"hi alice\"", text)


async def test_presence_now_and_at_a_past_time(chat: Chat) -> None:
    now = await run("presence", "--object", "CHAT/lobby", "--json", env=chat.env)
    assert sorted(s["user"] for s in now.json_lines()) == ["alice", "bob"]
    then = await run("presence", "--at", chat.times["carol in"].isoformat(), "--json", env=chat.env)
    sockets = then.json_lines()
    assert [s["user"] for s in sockets] == ["alice", "bob", "carol"]  # oldest first
    carol = sockets[2]
    assert carol["closed_at"] is not None and carol["tags"] == ["room:lobby", "user:carol"]
    assert carol["node"] == "history-node" and carol["object"] == "CHAT/lobby"
    tagged = await run("presence", "--tag", "user:bob", env=chat.env)
    (row,) = [line for line in tagged.stdout.splitlines() if "CHAT/lobby" in line]
    assert "bob" in row.split() and "history-node" in row.split()
    before = await run("presence", "--at", chat.times["empty"].isoformat(), env=chat.env)
    assert before.code == 0 and before.stdout == ""
    assert "nobody was connected then" in before.stderr


async def test_diff_between_two_points(chat: Chat) -> None:
    result = await run(
        "diff", "CHAT/lobby", str(chat.seqs["both"]), str(chat.seqs["carol in"]), "--json",
        env=chat.env,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    (diff,) = result.json_lines()
    assert (diff["from_seq"], diff["to_seq"]) == (chat.seqs["both"], chat.seqs["carol in"])
    assert [(c["key"], c["change"]) for c in diff["storage"]] == [
        ("count", "added"),
        ("message:000000000001", "added"),
        ("message:000000000002", "added"),
    ]
    assert diff["storage"][0]["new"] == 2
    assert [s["attachment"] for s in diff["sockets_opened"]] == [{"username": "carol"}]
    assert diff["sockets_closed"] == [] and diff["sockets_changed"] == []
    assert diff["fields"] == [{"name": "messages", "old": 0, "new": 2}]

    # By time, and the other way: carol's socket closes, a message is added.
    table = await run("diff", "CHAT/lobby", chat.times["carol in"].isoformat(), "now", env=chat.env)
    assert table.code == 0, table.stderr
    assert re.search(r"key changed\s+count\s+2\s+3", table.stdout)
    assert re.search(r"key added\s+message:000000000003\s+.*\"bye\"", table.stdout)
    carol = r"\[room:lobby, user:carol\] \{\"username\":\"carol\"\}"
    assert re.search(r"socket closed\s+\S+\s+" + carol, table.stdout)
    same = await run("diff", "CHAT/lobby", "3", "3", env=chat.env)
    assert "from seq 3 to seq 3: no change" in same.stdout


async def test_follow_prints_events_as_they_commit(chat: Chat) -> None:
    args = ("events", "CHAT/lobby", "--follow", "--json", "--type", "message_received")
    async with durable(*args, env=chat.env) as follower:
        await follower.wait_for(r"following CHAT/lobby after seq \d+", timeout=30)
        assert sum('"type":"message_received"' in line for line in follower.lines) == 3
        await chat.say("bob", "are you following?")
        await follower.wait_for(r'"sender":"bob".*are you following\?', timeout=30)
        await chat.say("alice", "yes")
        await follower.wait_for(r'"sender":"alice".*\\"yes\\"', timeout=30)


async def test_tail_prints_what_a_running_node_commits(chat: Chat) -> None:
    async with durable("tail", "--json", env=chat.env) as tail:
        await tail.wait_for(r"following every object after position \d+", timeout=30)
        await chat.join("dave", room="kitchen")
        await chat.say("dave", "anyone in the kitchen?")
        await chat.say("alice", "lobby still here")
        line = await tail.wait_for(r'"object":"CHAT/lobby".*lobby still here', timeout=30)
        kitchen = [entry for entry in tail.lines if '"object":"CHAT/kitchen"' in entry]
        assert any("websocket_accepted" in entry for entry in kitchen)
        assert any('"sender":"dave"' in entry and "anyone in the kitchen" in entry
                   for entry in kitchen)  # fmt: skip
        # Nothing from before the tail started: the scenario's first message is not there.
        assert not any("hello bob" in entry for entry in tail.lines)
        assert line.group(0)
    async with durable("tail", "--from-start", env=chat.env) as everything:
        await everything.wait_for(r"CHAT/lobby #1\s", timeout=30)
        await everything.wait_for(rf"alice: sent {re.escape(HELLO)}", timeout=30)


async def test_points_outside_the_history_and_bad_points_are_one_line_errors(chat: Chat) -> None:
    last = chat.seqs["end"]
    cases = [
        (("state", "CHAT/lobby", "--at", "999999"), "has events 1 to "),
        (("state", "CHAT/lobby", "--at", "yesterday"), "is neither a seq nor an ISO 8601 time"),
        (("state", "CHAT/lobby", "--at", "2026-12-07T18:00:00"), "has no time zone"),
        (("diff", "CHAT/lobby", "1", "-3"), "B '-3' is neither a seq nor"),
        (("events", "CHAT/lobby", "--since", "12:00"), "is neither a seq nor"),
        (("presence", "--at", "soon"), "is neither a seq nor an ISO 8601 time"),
        (("state", "CHAT/nowhere"), "no object of binding CHAT is named 'nowhere'"),
        (("events", "0" * 64), f"no object has the id {'0' * 64}"),
        (("presence", "--object", "lobby"), "'lobby' names no object"),
    ]
    before = (chat.times["empty"] - timedelta(hours=1)).isoformat()
    cases.append((("state", "CHAT/lobby", "--at", before), "is before the first event"))
    results = await asyncio.gather(*(run(*args, env=chat.env) for args, _ in cases))
    for (args, message), result in zip(cases, results, strict=True):
        assert result.code == 1, (args, result)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert last > 0


async def test_psql_runs_on_the_same_database(chat: Chat) -> None:
    result = await run("psql", "-At", "-c", "SELECT count(*) FROM events", env=chat.env)
    assert result.code == 0, result.stderr
    count = (await chat.sql("SELECT count(*) FROM events"))[0][0]
    assert result.stdout.strip() == str(count)


async def test_the_tail_keeps_up_while_a_node_runs(chat: Chat) -> None:
    """Events committed while the tail runs come out in position order, none missing."""
    async with durable("tail", "--json", env=chat.env) as tail:
        match = await tail.wait_for(r"following every object after position (\d+)", timeout=30)
        start = int(match.group(1))
        for n in range(20):
            await chat.say("alice" if n % 2 else "bob", f"burst {n}")
        await tail.wait_for(r"burst 19", timeout=30)
        await asyncio.sleep(0.3)
    rows = await chat.sql("SELECT position FROM events WHERE position > $1 ORDER BY 1", start)
    printed = [
        int(m.group(1)) for line in tail.lines if (m := re.search(r'"position":(\d+)', line))
    ]
    assert printed == [row[0] for row in rows][: len(printed)]
    assert len(printed) >= 40  # 20 messages: each a frame and a storage write at least
