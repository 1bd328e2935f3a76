"""The chat example's protocol, over real WebSocket clients (no browser needed)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.examples.support import receive, receive_published, receive_type, send, serve_example
from tests.support import eventually


async def test_plain_request_gets_426(database_url):
    async with serve_example(database_url, "chat") as node:
        response = await node.client.get("/chat/lobby?username=alice")
        assert response.status == 426
        assert await response.text() == "Expected WebSocket upgrade"


async def test_username_is_required(database_url):
    async with serve_example(database_url, "chat") as node:
        with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
            await node.client.ws_connect("/chat/lobby")
        assert raised.value.status == 400
        response = await node.client.get(
            "/chat/lobby",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
        )
        assert response.status == 400
        assert "username" in await response.text()


async def test_page_is_served_at_root(database_url):
    async with serve_example(database_url, "chat") as node:
        response = await node.client.get("/")
        assert response.status == 200
        assert "<title>Chat</title>" in await response.text()


async def test_join_message_leave_and_ping(database_url):
    async with serve_example(database_url, "chat") as node:
        alice = await node.client.ws_connect("/chat/lobby?username=alice")
        assert await receive(alice) == {"type": "history", "messages": []}
        assert await receive(alice) == {"type": "join", "username": "alice", "online": ["alice"]}

        bob = await node.client.ws_connect("/chat/lobby?username=bob")
        assert (await receive(bob))["type"] == "history"
        joined = {"type": "join", "username": "bob", "online": ["alice", "bob"]}
        assert await receive(bob) == joined
        assert await receive(alice) == joined

        await send(alice, type="message", text="hello bob")
        for ws in (alice, bob):
            frame = await receive(ws)
            assert (frame["type"], frame["username"], frame["text"]) == (
                "message",
                "alice",
                "hello bob",
            )

        await bob.send_str("ping")
        assert await bob.receive_str(timeout=5) == "pong"

        await bob.close()
        assert await receive(alice) == {"type": "leave", "username": "bob", "online": ["alice"]}
        await alice.close()


async def test_rooms_are_separate(database_url):
    async with serve_example(database_url, "chat") as node:
        alice = await node.client.ws_connect("/chat/red?username=alice")
        bob = await node.client.ws_connect("/chat/blue?username=bob")
        await receive_type(alice, "join")
        await receive_type(bob, "join")
        await send(alice, type="message", text="only red")
        assert (await receive(alice))["text"] == "only red"
        await send(bob, type="message", text="only blue")
        assert (await receive(bob))["text"] == "only blue"
        await alice.close()
        await bob.close()


async def test_bad_frames_get_an_error_and_are_not_kept(database_url):
    async with serve_example(database_url, "chat") as node:
        alice = await node.client.ws_connect("/chat/lobby?username=alice")
        await receive_type(alice, "join")
        await alice.send_str("not json")
        assert (await receive(alice))["type"] == "error"
        await send(alice, type="message", text="x" * 2001)
        assert (await receive(alice))["message"] == "At most 2000 characters"
        await alice.close()
        carol = await node.client.ws_connect("/chat/lobby?username=carol")
        assert await receive(carol) == {"type": "history", "messages": []}
        await carol.close()


async def test_history_keeps_the_last_fifty(database_url):
    async with serve_example(database_url, "chat") as node:
        alice = await node.client.ws_connect("/chat/lobby?username=alice")
        await receive_type(alice, "join")
        for number in range(1, 56):
            await send(alice, type="message", text=f"m{number}")
            assert (await receive(alice))["text"] == f"m{number}"
        bob = await node.client.ws_connect("/chat/lobby?username=bob")
        history = await receive(bob)
        assert [m["text"] for m in history["messages"]] == [f"m{n}" for n in range(6, 56)]
        assert {m["username"] for m in history["messages"]} == {"alice"}
        await alice.close()
        await bob.close()


async def test_room_survives_hibernation(database_url):
    async with serve_example(database_url, "chat", hibernate_after=0.2) as node:
        alice = await node.client.ws_connect("/chat/lobby?username=alice")
        bob = await node.client.ws_connect("/chat/lobby?username=bob")
        await send(alice, type="message", text="before")
        for ws in (alice, bob):
            assert (await receive_type(ws, "message"))["text"] == "before"

        await eventually(lambda: not node.runtime.activations, timeout=5)
        await bob.send_str("ping")
        assert await bob.receive_str(timeout=5) == "pong"
        assert not node.runtime.activations  # the auto-response did not wake the room

        await send(bob, type="message", text="after")
        assert (await receive_type(alice, "message"))["text"] == "after"
        carol = await node.client.ws_connect("/chat/lobby?username=carol")
        history = await receive(carol)
        assert [m["text"] for m in history["messages"]] == ["before", "after"]
        assert (await receive(carol))["online"] == ["alice", "bob", "carol"]
        for ws in (alice, bob, carol):
            await ws.close()


async def test_content_is_taken_for_text(database_url):
    # Chat clients written for {"type": "message", "content": ...} work unchanged.
    async with serve_example(database_url, "chat") as node:
        alice = await node.client.ws_connect("/chat/lobby?username=alice")
        await receive_type(alice, "join")
        await send(alice, type="message", content="sent as content")
        frame = await receive_type(alice, "message")
        assert (frame["username"], frame["text"]) == ("alice", "sent as content")
        await send(alice, type="message", text="text wins", content="not this")
        assert (await receive_type(alice, "message"))["text"] == "text wins"
        await send(alice, type="message", content=42)
        assert (await receive(alice))["type"] == "error"

        bob = await node.client.ws_connect("/chat/lobby?username=bob")
        history = await receive(bob)
        assert [m["text"] for m in history["messages"]] == ["sent as content", "text wins"]
        assert [m["id"] for m in history["messages"]] == [1, 2]
        await alice.close()
        await bob.close()


async def test_lines_carry_their_seq_and_a_returning_client_gets_what_it_missed(database_url):
    async with serve_example(database_url, "chat") as node:
        alice = await node.client.ws_connect("/chat/lobby?username=alice")
        assert await receive(alice) == {"type": "history", "messages": []}
        seq, joined = await receive_published(alice)
        assert joined["type"] == "join" and seq > 0
        bob = await node.client.ws_connect("/chat/lobby?username=bob")
        await receive_type(bob, "join")
        await receive_type(alice, "join")
        await send(bob, type="message", text="seen by alice")
        last, line = await receive_published(alice)
        assert line["text"] == "seen by alice" and last > seq
        await alice.close()  # alice's connection drops

        await receive_type(bob, "leave")
        for text in ("one", "two", "three"):
            await send(bob, type="message", text=text)
        for text in ("one", "two", "three"):
            assert (await receive_type(bob, "message"))["text"] == text

        alice = await node.client.ws_connect(f"/chat/lobby?username=alice&after={last}")
        missed = [await receive_published(alice) for _ in range(5)]
        # No history: the lines since `after`, from the log, then her own return, live.
        assert [(m["type"], m.get("text", m["username"])) for _, m in missed] == [
            ("leave", "alice"),
            ("message", "one"),
            ("message", "two"),
            ("message", "three"),
            ("join", "alice"),
        ]
        seqs = [seq for seq, _ in missed]
        assert seqs == sorted(seqs) and seqs[0] > last
        assert missed[-1][1]["online"] == ["alice", "bob"]
        await send(bob, type="message", text="live")
        assert (await receive_type(alice, "message"))["text"] == "live"
        for ws in (alice, bob):
            await ws.close()


async def test_a_bad_or_unknown_position_is_refused(database_url):
    async with serve_example(database_url, "chat") as node:
        response = await node.client.get("/chat/lobby?username=alice&after=-1")
        assert response.status == 400
        assert await response.text() == "?after= takes the seq of the last line seen (a number)"
        ws = await node.client.ws_connect("/chat/lobby?username=alice&after=999")
        closed = await ws.receive(timeout=10)
        assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, 4416)
        assert "Cannot resume after seq 999" in closed.extra
