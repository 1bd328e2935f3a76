"""What an object's handlers log is kept with the turn that logged it, committed with its
events: a frame or a response the client got implies the lines of its turn are in the table,
each with its turn's seq; a turn's bound drops the rest and says so; objects running at once
keep their own lines; the node's own log still gets every record."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from service.history_root import open_history
from service.rerun.engine import rerun
from service.settings import Settings
from tests.object_logs.journal import app
from tests.object_logs.support import last_seq, lines_of, messages_of, seqs_of
from tests.support import eventually, serve


async def test_a_fetch_keeps_its_lines_committed_before_its_response(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app) as node:
        response = await node.client.get("/journal/a/page")
        assert response.status == 200
        # Read at once: the response went out after its turn's commit, lines included.
        assert await messages_of(sql, "a") == [
            (0, "constructed with 0 keys"),  # the first wake: no event yet
            (await last_seq(sql, "a"), "fetch GET /journal/a/page"),
        ]
        (request,) = await seqs_of(sql, "a", "request_received")
        # The turn's seq is its last event's: the request, then the counter it wrote.
        assert await last_seq(sql, "a") == request + 1


async def test_a_message_keeps_its_lines_committed_before_its_frames(
    database_url: str, sql: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/journal/b?who=ada")
        for text in ("hello", "again"):
            await ws.send_str(text)
            assert await ws.receive_str(timeout=5) == f"ack {text}"
            (*_, received) = await seqs_of(sql, "b", "message_received")
            assert (await messages_of(sql, "b"))[-1] == (received, f"ada said {text}")
        # The upgrade's turn ends with the socket's attachment.
        (attached,) = await seqs_of(sql, "b", "attachment_set")
        assert await messages_of(sql, "b") == [
            (0, "constructed with 0 keys"),
            (attached, "ada joined"),
            (attached + 1, "ada said hello"),
            (attached + 2, "ada said again"),
        ]
        lines = await lines_of(sql, "b")
        assert [(line.line, line.level, line.logger) for line in lines] == [
            (1, logging.INFO, "journal")
        ] * 4
        await ws.close()

        async def closed() -> bool:
            return (await messages_of(sql, "b"))[-1][1] == "ada left with 1000"

        await eventually(closed)
        (close,) = await seqs_of(sql, "b", "websocket_closed")
        assert (await messages_of(sql, "b"))[-1] == (close, "ada left with 1000")
    # The node's own log got every record too, as it would without object logs.
    assert {"ada joined", "ada said hello", "ada said again"} <= set(caplog.messages)


async def test_a_handler_that_raises_keeps_its_lines_and_its_traceback(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/journal/c?who=ada")
        await ws.send_str("raise")
        await ws.send_str("after")
        # The next turn's frame: the failed turn, before it, has committed.
        assert await ws.receive_str(timeout=5) == "ack after"
        (raised, after) = await seqs_of(sql, "c", "message_received")
        lines = [line for line in await lines_of(sql, "c") if line.seq == raised]
        assert [(line.line, line.level, line.logger) for line in lines] == [
            (1, logging.INFO, "journal"),
            (2, logging.WARNING, "journal"),
            (3, logging.ERROR, "service.runtime.dispatch"),
        ]
        assert [line.message for line in lines[:2]] == ["ada said raise", "about to raise"]
        failure = lines[2].message
        assert failure.startswith("handler Journal.websocket_message raised\nTraceback")
        assert failure.endswith("ValueError: bad message")
        # Only the frame is kept of that turn: its write was undone.
        assert after == raised + 1

        response = await node.client.get("/journal/c/broken?raise=1")
        assert response.status == 500
        (*_, request) = await seqs_of(sql, "c", "request_received")
        fetch_lines = [line for line in await lines_of(sql, "c") if line.seq == request]
        assert fetch_lines[0].message == "fetch GET /journal/c/broken"
        assert fetch_lines[1].message.endswith("RuntimeError: fetch failed on purpose")
        await ws.close()


async def test_a_turn_that_resets_the_object_keeps_its_lines(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/journal/c2?who=ada")
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "ack hello"
        before = await last_seq(sql, "c2")
        await ws.send_str("abort")
        await ws.send_str("after")
        # Handled by the next instance, which the constructor's turn began.
        assert await ws.receive_str(timeout=5) == "ack after"
        # Nothing of the aborted turn is in the log but what its code logged, under the seq
        # the object was at.
        assert await seqs_of(sql, "c2", "storage_put") == []
        assert (await messages_of(sql, "c2"))[3:] == [
            (before, "ada said abort"),
            (before, "aborting"),
            (before, "constructed with 0 keys"),
            (before + 1, "ada said after"),
        ]
        await ws.close()


async def test_an_alarm_keeps_its_lines_with_its_seq(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app) as node:
        response = await node.client.get("/journal/d/?alarm_ms=100")
        assert response.status == 200

        async def fired() -> bool:
            return (await messages_of(sql, "d"))[-1][1] == "alarm fired"

        await eventually(fired)
        (alarm,) = await seqs_of(sql, "d", "alarm_fired")
        # Fired, deleted, then the handler's write: the turn ends at that write.
        assert (await messages_of(sql, "d"))[-1] == (alarm + 2, "alarm fired")
        assert await last_seq(sql, "d") == alarm + 2
        assert (await messages_of(sql, "d"))[1:3] == [
            (alarm - 1, "fetch GET /journal/d/"),
            (alarm - 1, "alarm set"),
        ]


async def test_past_the_bound_a_turn_drops_the_rest_and_says_so(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app, log_bytes_per_turn=200) as node:
        ws = await node.client.ws_connect("/journal/e?who=ada")
        await ws.send_str("noisy 10 50")
        assert await ws.receive_str(timeout=5) == "ack noisy 10 50"
        (received,) = await seqs_of(sql, "e", "message_received")
        lines = [line for line in await lines_of(sql, "e") if line.seq == received]
        # 20 bytes, then 50 each: three fit in 200, seven do not.
        assert [line.message for line in lines[:4]] == [
            "ada said noisy 10 50",
            *(f"{n:04d}".ljust(50, "x") for n in range(3)),
        ]
        (notice,) = lines[4:]
        assert (notice.line, notice.level, notice.logger) == (5, logging.WARNING, "durable.logs")
        assert notice.message == (
            "7 more log records of this turn (350 bytes) were dropped: a turn keeps at most "
            "200 bytes of log messages (--log-bytes-per-turn)"
        )
        # The next turn has a bound of its own.
        await ws.send_str("noisy 2 50")
        assert await ws.receive_str(timeout=5) == "ack noisy 2 50"
        assert len([line for line in await lines_of(sql, "e") if line.seq == received + 1]) == 3
        await ws.close()


async def test_objects_running_at_once_keep_their_own_lines(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app) as node:
        clients = {
            name: await node.client.ws_connect(f"/journal/{name}?who={name}-client")
            for name in ("f1", "f2", "f3")
        }
        for _ in range(3):
            # Each turn awaits in the middle: the three objects' turns interleave.
            await asyncio.gather(*(ws.send_str("sleepy") for ws in clients.values()))
            for ws in clients.values():
                assert await ws.receive_str(timeout=5) == "ack sleepy"
        for name, ws in clients.items():
            said = [m for _, m in await messages_of(sql, name)][2:]
            assert said == [f"{name}-client said sleepy", f"{name}-client woke up"] * 3
            await ws.close()


async def test_turns_that_record_no_event_keep_their_lines_at_the_seq_they_ran_at(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/quiet/g")
        for text in ("one", "two", "three"):
            await ws.send_str(text)
            assert await ws.receive_str(timeout=5) == f"ack {text}"
        seq = await last_seq(sql, "g")
        assert await seqs_of(sql, "g", "message_received") == []
        lines = await lines_of(sql, "g")
        assert [(line.seq, line.line, line.message) for line in lines] == [
            (seq, 1, "quietly got one"),
            (seq, 1, "quietly got two"),
            (seq, 1, "quietly got three"),
        ]
        assert lines[0].id < lines[1].id < lines[2].id
        await ws.close()


async def test_what_is_kept_and_how(database_url: str, sql: asyncpg.Connection) -> None:
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/journal/h?who=ada")
        for text in ("debug", "caught", "nul", "thread"):
            await ws.send_str(text)
            assert await ws.receive_str(timeout=5) == f"ack {text}"
        messages = [m for _, m in await messages_of(sql, "h")][2:]
        # Below the level (INFO), or the node's own: not kept.
        assert messages[0] == "ada said debug"
        # A logged exception comes with its traceback.
        assert messages[1] == "ada said caught"
        assert messages[2].startswith("lookup failed\nTraceback (most recent call last):")
        assert messages[2].endswith("KeyError: 'missing'")
        # PostgreSQL's text holds no NUL.
        assert messages[3:5] == ["ada said nul", "a\ufffdb"]
        # A thread the turn waits for logs into it (asyncio.to_thread copies the context).
        assert messages[5:] == ["ada said thread", "from a thread of ada"]
        await ws.close()


async def test_a_line_logged_after_its_turn_by_a_task_it_started_is_kept(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/journal/i?who=ada")
        await ws.send_str("later")
        assert await ws.receive_str(timeout=5) == "ack later"

        async def kept() -> bool:
            return (await messages_of(sql, "i"))[-1][1] == "later for ada"

        await eventually(kept)
        # In a turn of its own, which recorded no event.
        (received,) = await seqs_of(sql, "i", "message_received")
        assert (await messages_of(sql, "i"))[-2:] == [
            (received, "ada said later"),
            (received, "later for ada"),
        ]
        await ws.close()


async def test_a_rerun_runs_handlers_that_log_and_writes_no_line(
    database_url: str, sql: asyncpg.Connection
) -> None:
    async with serve(database_url, app) as node:
        ws = await node.client.ws_connect("/journal/j?who=ada")
        for text in ("hello", "raise", "caught", "noisy 3 10", "bye"):
            await ws.send_str(text)
        assert await ws.receive_str(timeout=5) == "ack hello"
        for text in ("caught", "noisy 3 10", "bye"):
            assert await ws.receive_str(timeout=5) == f"ack {text}"
        await ws.close()
    before = await sql.fetchval("SELECT count(*) FROM object_logs")
    async with open_history(Settings(database_url=database_url)) as history:
        report = await rerun(history, app, "JOURNAL/j")
    assert report.divergence is None, report.divergence
    assert await sql.fetchval("SELECT count(*) FROM object_logs") == before
