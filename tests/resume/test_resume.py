"""Resume: a client that reconnects with the last seq it saw gets exactly what it missed,
from the log, before anything live; then the live messages, none twice, none lost."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from service import Application, DurableObject, Response, WebSocketPair
from service.api import published
from tests.resume.support import Follower, feed, parse
from tests.resume.test_publish import published_rows
from tests.support import eventually, serve


async def test_a_reconnect_gets_exactly_what_it_missed_then_live_messages(database_url):
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        url = str(node.client.make_url("/"))
        ann, bob = Follower(session, url, "room"), Follower(session, url, "room")
        await ann.connect()
        await bob.connect()
        await bob.publish("before", count=3)
        await ann.receive_until((await bob.receive_until_count(3))[-1][0])
        await ann.ws.close()

        await bob.publish("missed", count=5)
        await bob.receive_until_count(8)
        await ann.connect()  # with ?after= the last seq it saw
        await bob.publish("live")
        await ann.receive_until(bob.received[-1][0] + 1)
        assert [data for _, data in ann.received] == [
            *(f"before-{n}" for n in range(1, 4)),
            *(f"missed-{n}" for n in range(1, 6)),
            "live",
        ]
        # Exactly the log's messages, in order: none missed, none twice.
        rows = await published_rows(database_url)
        assert [seq for seq, _ in ann.received] == [row["seq"] for row in rows]
        with pytest.raises(TimeoutError):
            await ann.receive(timeout=0.3)


async def test_a_resume_at_the_last_seq_gets_only_live_messages(database_url):
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        ann = Follower(session, str(node.client.make_url("/")), "room")
        await ann.connect()
        await ann.publish("one")
        await ann.receive()
        await ann.ws.close()
        await ann.connect()
        await ann.publish("two")
        assert (await ann.receive())[1] == "two"
        assert [data for _, data in ann.received] == ["one", "two"]


async def test_a_resume_selects_by_the_sockets_tags(database_url):
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        url = str(node.client.make_url("/"))
        red = Follower(session, url, "room", tags="red,all")
        writer = Follower(session, url, "room", tags="writer")
        await writer.connect()
        red.last = 0
        for data, tag in [("r1", "red"), ("b1", "blue"), ("a1", None), ("r2", "red")]:
            await writer.publish(data, tag=tag)
        await writer.receive_until_count(1)  # the untagged one: all four are committed
        await red.connect()
        await red.receive_until((await published_rows(database_url))[-1]["seq"])
        assert [data for _, data in red.received] == ["r1", "a1", "r2"]
        # The tags are the socket's at the resume: a socket that is not red now is not sent
        # what was published for red while it was away.
        blue = Follower(session, url, "room", tags="blue")
        blue.last = 0
        await blue.connect()
        await writer.publish("end")
        await blue.receive_until((await published_rows(database_url))[-1]["seq"])
        assert [data for _, data in blue.received] == ["b1", "a1", "end"]


async def test_binary_messages_are_replayed_as_they_were_sent(database_url):
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        url = str(node.client.make_url("/"))
        live, late = Follower(session, url, "room"), Follower(session, url, "room")
        await live.connect()
        late.last = 0
        for payload in (b"\x00", b"\xff" * 300, b""):
            await live.ws.send_bytes(payload)
        await live.publish({"after": "bytes"})
        await live.receive_until_count(4)
        await late.connect()
        await late.receive_until(live.received[-1][0])
        assert late.received == live.received
        assert [data for _, data in late.received] == [
            b"\x00",
            b"\xff" * 300,
            b"",
            {"after": "bytes"},
        ]


async def test_messages_published_while_a_socket_resumes_come_once_in_order(database_url):
    """Publishers keep many commits in flight while a client reconnects over and over: each
    message published around a resume is either in its replay or sent live, never both."""
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        url = str(node.client.make_url("/"))
        writers = [Follower(session, url, "room", tags="writer") for _ in range(3)]
        reader = Follower(session, url, "room", tags="reader")
        for writer in writers:
            await writer.connect()
        reader.last = 0
        await reader.connect()
        stop = asyncio.Event()

        async def write(writer: Follower, name: str) -> int:
            sent = 0
            while not stop.is_set():
                # Frames without awaiting their effect: many turns, pipelined commits.
                for _ in range(10):
                    sent += 1
                    await writer.publish(f"{name}-{sent}", tag="reader")
                await asyncio.sleep(0.005)
            return sent

        tasks = [asyncio.ensure_future(write(w, f"w{i}")) for i, w in enumerate(writers)]
        try:
            for _ in range(15):
                for _ in range(5):
                    await reader.receive()
                await reader.ws.close()
                await reader.connect()
        finally:
            stop.set()
            counts = await asyncio.gather(*tasks)
        await _wait_for_log(database_url, sum(counts))
        rows = await published_rows(database_url)
        await reader.receive_until(rows[-1]["seq"])
        assert reader.received == [(row["seq"], json.loads(row["data"])["data"]) for row in rows]
        # Each writer's messages in the order it sent them.
        for index, count in enumerate(counts):
            mine = [data for _, data in reader.received if data.startswith(f"w{index}-")]
            assert mine == [f"w{index}-{n}" for n in range(1, count + 1)]


async def _wait_for_log(database_url: str, count: int) -> None:
    async def logged() -> bool:
        return len(await published_rows(database_url)) >= count

    await eventually(logged, timeout=20)


async def test_a_resume_across_hibernation(database_url):
    async with (
        serve(database_url, feed(), hibernate_after=0.2) as node,
        aiohttp.ClientSession() as session,
    ):
        url = str(node.client.make_url("/"))
        ann, bob = Follower(session, url, "room"), Follower(session, url, "room")
        await ann.connect()
        await bob.connect()
        await bob.publish("one")
        await ann.receive()
        await ann.ws.close()
        await bob.publish("two", count=2)
        await bob.receive_until_count(3)
        await eventually(lambda: not node.runtime.activations, timeout=10)
        await ann.connect()  # wakes the object, which replays, then reads the log
        await ann.receive_until(bob.received[-1][0])
        assert [data for _, data in ann.received] == ["one", "two-1", "two-2"]


async def test_a_resume_beyond_the_bound_is_truncated_and_says_so(database_url):
    async with (
        serve(database_url, feed(), max_resume_messages=3) as node,
        aiohttp.ClientSession() as session,
    ):
        url = str(node.client.make_url("/"))
        writer, late = Follower(session, url, "room"), Follower(session, url, "room")
        await writer.connect()
        await writer.publish("m", count=8)
        seqs = [seq for seq, _ in await writer.receive_until_count(8)]
        late.last = 0
        await late.connect()
        truncation = await late.ws.receive(timeout=5)
        # The first five are missed for good; the newest three follow, then live ones.
        assert json.loads(truncation.data) == {"seq": seqs[4], "truncated": True}
        await writer.publish("live")
        for _ in range(4):
            await late.receive()
        assert [data for _, data in late.received] == ["m-6", "m-7", "m-8", "live"]
        # Within the bound, nothing is truncated.
        await late.ws.close()
        await writer.publish("n", count=3)
        await writer.receive_until_count(12)
        await late.connect()
        for _ in range(3):
            await late.receive()
        assert [data for _, data in late.received[-3:]] == ["n-1", "n-2", "n-3"]


async def test_a_position_beyond_the_last_seq_closes_the_socket_with_a_reason(database_url):
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        url = str(node.client.make_url("/"))
        writer, stranger = Follower(session, url, "room"), Follower(session, url, "room")
        await writer.connect()
        await writer.publish("m")
        await writer.receive()
        stranger.last = 1000
        ws = await stranger.connect()
        await writer.publish("not for the stranger")
        closed = await ws.receive(timeout=5)
        assert closed.type is aiohttp.WSMsgType.CLOSE
        assert closed.data == published.RESUME_AHEAD_CODE == 4416
        # The object's last event: the stranger's own request, recorded after the message.
        last = (await published_rows(database_url))[0]["seq"] + 1
        assert closed.extra == f"Cannot resume after seq 1000: this object's last seq is {last}."


class Strict(DurableObject):
    async def fetch(self, request):
        _client, server = WebSocketPair()
        errors = []
        for after in ("3", 1.0, True, -1):
            try:
                self.ctx.accept_websocket(server, resume_after=after)
            except (TypeError, ValueError) as error:
                errors.append(f"{type(error).__name__}: {error}")
        return Response.json(errors)


async def test_resume_after_must_be_a_seq(database_url):
    async with serve(database_url, Application({"STRICT": Strict})) as node:
        response = await node.client.get("/strict/s")
        assert await response.json() == [
            "TypeError: resume_after must be an int, not str.",
            "TypeError: resume_after must be an int, not float.",
            "TypeError: resume_after must be an int, not bool.",
            "ValueError: resume_after must not be negative: -1.",
        ]


async def test_a_resume_reads_only_what_the_sender_committed(database_url):
    """The published frames after a resume carry seqs the log has, in the socket's order."""
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        ws = await session.ws_connect(str(node.client.make_url("/feed/room?after=0")))
        await ws.send_str(json.dumps({"publish": "x", "count": 3}))
        got = [parse(await ws.receive(timeout=5)) for _ in range(3)]
        rows = await published_rows(database_url)
        assert got == [(row["seq"], json.loads(row["data"])["data"]) for row in rows]
        await ws.close()


async def test_a_replayed_frame_is_the_live_frame_byte_for_byte(database_url):
    values = [
        {"text": "hé ✓", "n": 1e20, "f": 0.1 + 0.2, "big": 2**70, "neg": -0.0},
        "with NUL \x00 inside",
        {"$bytes": "not bytes, a dict that looks like a wrapper"},
        ["$5", None, True, [], {}],
        "line\u2028separator and \x7f",
    ]
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        live = await session.ws_connect(str(node.client.make_url("/feed/room")))
        for value in values:
            response = await node.client.post("/feed/room", json={"data": value})
            assert response.status == 200
        await live.send_bytes(b"\x00bytes\xff")
        live_frames = [(await live.receive(timeout=5)).data for _ in range(len(values) + 1)]
        late = await session.ws_connect(str(node.client.make_url("/feed/room?after=0")))
        replayed = [(await late.receive(timeout=5)).data for _ in range(len(values) + 1)]
        assert replayed == live_frames
        assert [json.loads(frame)["data"] for frame in live_frames[:-1]] == values
        assert live_frames[-1][8:] == b"\x00bytes\xff"
        for ws in (live, late):
            await ws.close()
