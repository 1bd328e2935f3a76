"""Every read of the admin API against a chat room a real node served to real clients: the
answers hold the same records as the history commands' ``--json`` output for the same
question, and each matches its model in the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest

from service.admin import shapes
from tests.admin.support import get, ref
from tests.history_cli.support import Chat, run

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOBBY = ref("CHAT/lobby")


def api(chat: Chat, path: str) -> str:
    return f"{chat.node.url}/admin/api{path}"


async def cli(chat: Chat, *args: str) -> list[dict[str, Any]]:
    result = await run(*args, "--json", env=chat.env)
    assert result.code == 0, result.stderr
    return result.json_lines()


async def test_objects_are_the_catalog_as_durable_objects_lists_it(chat: Chat) -> None:
    answer = await get(chat.session, api(chat, "/objects"))
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")
    page = shapes.ObjectPageShape.model_validate(answer.body)
    assert [o.label for o in page.objects] == ["CHAT/kitchen", "CHAT/lobby"]
    assert page.cursor is None
    assert answer.body["objects"] == await cli(chat, "objects")

    lobby = answer.body["objects"][1]
    assert (lobby["live"], lobby["open_sockets"], lobby["owner_node"]) == (True, 2, "history-node")
    assert lobby["last_seq"] == chat.seqs["end"]
    live = await get(chat.session, api(chat, "/objects"), {"live": "true"})
    assert [o["label"] for o in live.body["objects"]] == ["CHAT/kitchen", "CHAT/lobby"]
    hibernated = await get(chat.session, api(chat, "/objects"), {"live": "false"})
    assert hibernated.body == {"objects": [], "cursor": None}
    other = await get(chat.session, api(chat, "/objects"), {"binding": "GAME"})
    assert other.body == {"objects": [], "cursor": None}


async def test_objects_are_searched_by_a_part_of_their_name_in_any_case(chat: Chat) -> None:
    async def labels(**params: str) -> list[str]:
        answer = await get(chat.session, api(chat, "/objects"), params)
        assert answer.status == 200, answer.body
        return [o["label"] for o in answer.body["objects"]]

    assert await labels(name="lobby") == ["CHAT/lobby"]
    assert await labels(name="OBB") == ["CHAT/lobby"]
    assert await labels(name="itc", binding="CHAT") == ["CHAT/kitchen"]
    assert await labels(name="itc", binding="GAME") == []
    assert await labels(name="i") == ["CHAT/kitchen"]
    # Only itself: no wildcard of LIKE.
    assert await labels(name="%") == await labels(name="_") == []
    assert await labels(name="l", live="false") == []


async def test_objects_page_by_cursor(chat: Chat) -> None:
    first = await get(chat.session, api(chat, "/objects"), {"limit": "1"})
    assert [o["label"] for o in first.body["objects"]] == ["CHAT/kitchen"]
    assert isinstance(first.body["cursor"], str)
    second = await get(
        chat.session, api(chat, "/objects"), {"limit": "1", "cursor": first.body["cursor"]}
    )
    assert [o["label"] for o in second.body["objects"]] == ["CHAT/lobby"]
    assert second.body["cursor"] is None


async def test_one_object_by_name_or_id(chat: Chat) -> None:
    by_name = await get(chat.session, api(chat, f"/objects/{LOBBY}"))
    assert by_name.status == 200
    shapes.ObjectShape.model_validate(by_name.body)
    by_id = await get(chat.session, api(chat, f"/objects/{by_name.body['object_id']}"))
    assert by_id.body == by_name.body == (await cli(chat, "objects", "--binding", "CHAT"))[1]


async def test_events_page_through_the_whole_log_as_durable_events_prints_it(chat: Chat) -> None:
    whole = await cli(chat, "events", "CHAT/lobby")
    assert len(whole) == chat.seqs["end"]
    paged: list[dict[str, Any]] = []
    cursor: int | None = None
    pages = 0
    while True:
        params = {"limit": "4"} | ({} if cursor is None else {"cursor": str(cursor)})
        answer = await get(chat.session, api(chat, f"/objects/{LOBBY}/events"), params)
        assert answer.status == 200, answer.body
        page = shapes.EventPageShape.model_validate(answer.body)
        assert page.object.label == "CHAT/lobby" and len(page.events) <= 4
        paged += answer.body["events"]
        pages += 1
        cursor = answer.body["cursor"]
        if cursor is None:
            break
        assert cursor == paged[-1]["seq"]
    assert paged == whole
    assert pages == -(-len(whole) // 4)
    said = [e for e in paged if e["type"] == "message_received"]
    assert [(e["sender"], e["text"]) for e in said] == [
        ("alice", 'sent {"type": "message", "text": "hello bob"}'),
        ("bob", 'sent {"type": "message", "text": "hi alice"}'),
        ("alice", 'sent {"type": "message", "text": "bye"}'),
    ]


async def test_events_newest_first_page_back_through_the_whole_log(chat: Chat) -> None:
    whole = await cli(chat, "events", "CHAT/lobby")
    paged: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        params = {"limit": "4", "order": "desc"}
        if cursor is not None:
            params["cursor"] = str(cursor)
        answer = await get(chat.session, api(chat, f"/objects/{LOBBY}/events"), params)
        assert answer.status == 200, answer.body
        shapes.EventPageShape.model_validate(answer.body)
        paged += answer.body["events"]
        cursor = answer.body["cursor"]
        if cursor is None:
            break
        assert cursor == paged[-1]["seq"]
    # The same events, senders named as in seq order, newest first.
    assert paged == whole[::-1]
    # The newest page, then forward again from where a page began.
    newest = await get(
        chat.session, api(chat, f"/objects/{LOBBY}/events"), {"order": "desc", "limit": "3"}
    )
    assert [e["seq"] for e in newest.body["events"]] == [len(whole), len(whole) - 1, len(whole) - 2]
    forward = await get(
        chat.session,
        api(chat, f"/objects/{LOBBY}/events"),
        {"order": "asc", "cursor": str(len(whole) - 3)},
    )
    assert forward.body["events"] == whole[-3:]
    # Just below a seq (the timeline's jump), and bounded below.
    below = await get(
        chat.session,
        api(chat, f"/objects/{LOBBY}/events"),
        {"order": "desc", "until": "6", "since": "3"},
    )
    assert [e["seq"] for e in below.body["events"]] == [6, 5, 4, 3]
    assert below.body["cursor"] is None
    said = await get(
        chat.session,
        api(chat, f"/objects/{LOBBY}/events"),
        {"order": "desc", "type": "message_received", "limit": "2"},
    )
    assert [e["text"] for e in said.body["events"]] == [
        'sent {"type": "message", "text": "bye"}',
        'sent {"type": "message", "text": "hi alice"}',
    ]


async def test_events_in_a_range_of_seqs_or_times_of_some_types(chat: Chat) -> None:
    first, last = chat.seqs["both"] + 1, chat.seqs["talked"]
    by_seq = await get(
        chat.session,
        api(chat, f"/objects/{LOBBY}/events"),
        {"since": str(first), "until": str(last)},
    )
    assert [e["seq"] for e in by_seq.body["events"]] == list(range(first, last + 1))
    assert by_seq.body["events"] == await cli(
        chat, "events", "CHAT/lobby", "--since", str(first), "--until", str(last)
    )
    since, until = chat.times["both"].isoformat(), chat.times["talked"].isoformat()
    by_time = await get(
        chat.session, api(chat, f"/objects/{LOBBY}/events"), {"since": since, "until": until}
    )
    assert by_time.body["events"] == by_seq.body["events"]

    typed = await get(
        chat.session,
        api(chat, f"/objects/{LOBBY}/events"),
        [("type", "message_received"), ("type", "websocket_closed")],
    )
    assert typed.body["events"] == await cli(
        chat, "events", "CHAT/lobby", "--type", "message_received", "websocket_closed"
    )
    assert {e["type"] for e in typed.body["events"]} == {"message_received", "websocket_closed"}
    comma = await get(
        chat.session,
        api(chat, f"/objects/{LOBBY}/events"),
        {"type": "message_received,websocket_closed"},
    )
    assert comma.body == typed.body


async def test_state_now_at_a_seq_and_at_a_time_as_durable_state_rebuilds_it(chat: Chat) -> None:
    now = await get(chat.session, api(chat, f"/objects/{LOBBY}/state"))
    assert now.status == 200
    shapes.StateShape.model_validate(now.body)
    assert [now.body] == await cli(chat, "state", "CHAT/lobby")
    assert now.body["seq"] == chat.seqs["end"] and len(now.body["sockets"]) == 2

    at = chat.seqs["carol in"]
    by_seq = await get(chat.session, api(chat, f"/objects/{LOBBY}/state"), {"at": str(at)})
    assert [by_seq.body] == await cli(chat, "state", "CHAT/lobby", "--at", str(at))
    assert sorted(s["tags"][-1] for s in by_seq.body["sockets"]) == [
        "user:alice", "user:bob", "user:carol",
    ]  # fmt: skip
    moment = chat.times["carol in"].isoformat()
    by_time = await get(chat.session, api(chat, f"/objects/{LOBBY}/state"), {"at": moment})
    assert by_time.body == by_seq.body


async def test_presence_now_and_at_a_time_as_durable_presence_lists_it(chat: Chat) -> None:
    now = await get(chat.session, api(chat, "/presence"))
    assert now.status == 200
    shapes.PresencePageShape.model_validate(now.body)
    assert now.body["sockets"] == await cli(chat, "presence")
    assert [s["user"] for s in now.body["sockets"]] == ["alice", "bob"]
    assert now.body["more"] is False

    moment = chat.times["carol in"].isoformat()
    then = await get(chat.session, api(chat, "/presence"), {"at": moment})
    assert then.body["sockets"] == await cli(chat, "presence", "--at", moment)
    assert [s["user"] for s in then.body["sockets"]] == ["alice", "bob", "carol"]

    ada = await get(chat.session, api(chat, "/presence"), {"tag": "user:bob"})
    assert [s["user"] for s in ada.body["sockets"]] == ["bob"]
    kitchen = await get(chat.session, api(chat, "/presence"), {"object": "CHAT/kitchen"})
    assert kitchen.body == {"sockets": [], "more": False}
    one = await get(chat.session, api(chat, "/presence"), {"limit": "1"})
    assert [s["user"] for s in one.body["sockets"]] == ["alice"] and one.body["more"] is True


async def test_diff_between_two_points_as_durable_diff_shows_it(chat: Chat) -> None:
    first, second = str(chat.seqs["both"]), str(chat.seqs["carol out"])
    answer = await get(
        chat.session, api(chat, f"/objects/{LOBBY}/diff"), {"from": first, "to": second}
    )
    assert answer.status == 200
    shapes.DiffShape.model_validate(answer.body)
    assert [answer.body] == await cli(chat, "diff", "CHAT/lobby", first, second)
    assert answer.body["from_seq"] == chat.seqs["both"]
    assert {c["change"] for c in answer.body["storage"]} == {"added"}
    by_time = await get(
        chat.session,
        api(chat, f"/objects/{LOBBY}/diff"),
        {"from": chat.times["both"].isoformat(), "to": chat.times["carol out"].isoformat()},
    )
    assert by_time.body == answer.body


async def test_the_openapi_document_is_served(chat: Chat) -> None:
    answer = await get(chat.session, api(chat, "/openapi.json"))
    assert answer.status == 200
    assert answer.body["openapi"].startswith("3.1")
    assert "/admin/api/objects/{ref}/events" in answer.body["paths"]


async def test_the_banner_says_where_the_admin_api_is_and_who_may_use_it(chat: Chat) -> None:
    line = await chat.node.wait_for(r"Admin API at \S+", 5)
    assert line.group(0) == f"Admin API at {chat.node.url}/admin/api/"
    dashboard = await chat.node.wait_for(r"Admin dashboard at \S+", 5)
    assert dashboard.group(0) == f"Admin dashboard at {chat.node.url}/admin/"
    assert "(read-only; no token set: loopback clients only)" in chat.node.output
