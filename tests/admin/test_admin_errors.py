"""Every parameter of the admin API checked, with a 400 in the history commands' words; an
unknown object is a 404; an unknown endpoint or method answers in JSON too."""

from __future__ import annotations

import pytest

from service.admin import shapes
from tests.admin.support import get, post, ref
from tests.history_cli.support import Chat, run

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOBBY = ref("CHAT/lobby")


def api(chat: Chat, path: str) -> str:
    return f"{chat.node.url}/admin/api{path}"


async def refused(chat: Chat, path: str, params: object, status: int = 400) -> str:
    """The message of a refusal, checked to be the error shape with that status."""
    answer = await get(chat.session, api(chat, path), params)
    assert answer.status == status, answer.body
    return shapes.ErrorShape.model_validate(answer.body).error


async def command_error(chat: Chat, *args: str) -> str:
    """What the command says for the same mistake (without its ``error: ``)."""
    result = await run(*args, env=chat.env)
    assert result.code == 1
    return result.stderr.strip().splitlines()[-1].removeprefix("error: ")


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/objects", {"limit": "0"}, "limit must be at least 1, not 0"),
        ("/objects", {"limit": "5000"}, "limit must be at most 1000, not 5000"),
        ("/objects", {"limit": "ten"}, "limit must be a whole number, not 'ten'"),
        ("/objects", {"live": "maybe"}, "live must be true or false, not 'maybe'"),
        ("/objects", {"binding": ""}, "binding is empty: give a value or leave it out"),
        ("/objects", [("binding", "A"), ("binding", "B")], "binding is given 2 times: give it"),
        ("/objects", {"cursor": "nonsense"}, "cursor 'nonsense' is not one this API gave"),
        ("/objects", {"sort": "x"}, "unknown parameter 'sort': this endpoint takes binding, cur"),
        ("/objects", {"name": ""}, "name is empty: give a value or leave it out"),
        ("/objects", {"name": "x" * 201}, "name has 201 characters: give at most 200"),
        ("/objects", {"name": "lob\x00by"}, "name holds a NUL character, which no text in"),
        ("/objects", {"binding": "CH\x00"}, "binding holds a NUL character, which no text in"),
        ("/presence", {"tag": "user:\x00"}, "tag holds a NUL character, which no text in the"),
        (f"/objects/{LOBBY}/events", {"type": "a\x00"}, "type holds a NUL character, which no"),
        (f"/objects/{LOBBY}/events", {"order": "newest"}, "order must be asc or desc, not 'new"),
        (f"/objects/{LOBBY}/events", [("order", "asc"), ("order", "desc")], "order is given 2"),
        (f"/objects/{LOBBY}/events", {"cursor": "-1"}, "cursor must be at least 0, not -1"),
        (f"/objects/{LOBBY}/events", {"limit": "1001"}, "limit must be at most 1000, not 1001"),
        (f"/objects/{LOBBY}/events", {"type": ","}, "type is empty: give a value or leave it out"),
        (f"/objects/{LOBBY}/diff", {"from": "1"}, "to is required: a seq"),
        (f"/objects/{LOBBY}/diff", {"to": "1"}, "from is required: a seq"),
        (f"/objects/{LOBBY}", {"at": "1"}, "unknown parameter 'at': this endpoint takes no param"),
        ("/presence", {"limit": "0"}, "limit must be at least 1, not 0"),
        ("/presence", {"at": "12"}, "at '12' is neither a seq nor an ISO 8601 time"),
        ("/tail", {"from": "-5"}, "from must be at least 0, not -5"),
        (f"/objects/{LOBBY}/tail", {"from": "x"}, "from must be a whole number, not 'x'"),
    ],
)  # fmt: skip
async def test_a_bad_parameter_is_a_400_saying_what_to_give(
    chat: Chat, path: str, params: object, message: str
) -> None:
    assert (await refused(chat, path, params)).startswith(message)


@pytest.mark.parametrize(
    ("path", "name", "value", "command"),
    [
        (f"/objects/{LOBBY}/events", "since", "yesterday", ("events", "CHAT/lobby", "--since")),
        (f"/objects/{LOBBY}/events", "until", "2026-12-07", ("events", "CHAT/lobby", "--until")),
        (f"/objects/{LOBBY}/state", "at", "noon", ("state", "CHAT/lobby", "--at")),
        ("/presence", "at", "2026-12-07 18:00", ("presence", "--at")),
    ],
)  # fmt: skip
async def test_a_bad_point_is_refused_in_the_commands_words(
    chat: Chat, path: str, name: str, value: str, command: tuple[str, ...]
) -> None:
    said = await command_error(chat, *command, value)
    assert await refused(chat, path, {name: value}) == said.replace(f"--{name}", name, 1)


async def test_points_outside_the_history_are_refused_as_the_commands_refuse_them(
    chat: Chat,
) -> None:
    past = str(chat.seqs["end"] + 100)
    message = await refused(chat, f"/objects/{LOBBY}/state", {"at": past})
    assert message == await command_error(chat, "state", "CHAT/lobby", "--at", past)
    assert f"has events 1 to {chat.seqs['end']}" in message
    early = "2001-01-01T00:00:00+00:00"
    message = await refused(chat, f"/objects/{LOBBY}/diff", {"from": early, "to": "1"})
    assert message == await command_error(chat, "diff", "CHAT/lobby", early, "1")
    assert "is before the first event of CHAT/lobby" in message


@pytest.mark.parametrize(
    "path",
    [
        "/objects/{ref}",
        "/objects/{ref}/events",
        "/objects/{ref}/state",
        "/objects/{ref}/diff?from=1&to=2",
        "/objects/{ref}/tail",
        "/presence?object={ref}",
    ],
)
async def test_an_unknown_object_is_a_404_in_the_commands_words(chat: Chat, path: str) -> None:
    for unknown, command in [
        ("CHAT/nowhere", "no object of binding CHAT is named 'nowhere'"),
        ("ab" * 32, f"no object has the id {'ab' * 32}"),
        ("lobby", "'lobby' names no object: give BINDING/NAME"),
    ]:
        answer = await get(chat.session, api(chat, path.format(ref=ref(unknown))))
        assert answer.status == 404, (path, answer.body)
        assert answer.body["error"].startswith(command)
    said = await command_error(chat, "state", "CHAT/nowhere")
    answer = await get(chat.session, api(chat, f"/objects/{ref('CHAT/nowhere')}/state"))
    assert answer.body == {"error": said}


async def test_a_name_with_a_nul_character_names_no_object(chat: Chat) -> None:
    """PostgreSQL text cannot hold NUL: such a name is refused before any query."""
    nul = ref("CHAT/lob\x00by")
    answer = await get(chat.session, api(chat, f"/objects/{nul}/events"))
    assert answer.status == 404
    assert (
        answer.body["error"] == "'CHAT/lob\\x00by' names no object: a name holds no NUL character"
    )
    by_param = await refused(chat, "/presence", {"object": "CHAT/lob\x00by"})
    assert by_param == "object holds a NUL character, which no text in the log holds"


async def test_unknown_endpoints_and_methods_answer_in_json(chat: Chat) -> None:
    missing = await get(chat.session, api(chat, "/rooms"))
    assert missing.status == 404
    assert missing.body == {"error": "no endpoint /admin/api/rooms: see /admin/api/openapi.json"}
    wrong = await post(chat.session, api(chat, "/objects"), {})
    assert wrong.status == 405
    assert wrong.body == {"error": "POST is not allowed on /admin/api/objects: use GET"}


async def test_a_change_is_refused_while_the_api_is_read_only(chat: Chat) -> None:
    answer = await post(chat.session, api(chat, f"/objects/{LOBBY}/fork"), {"at": 1, "as": "x"})
    assert answer.status == 403
    assert answer.body["error"].startswith("the admin API is read-only: start the node with")
    objects = await get(chat.session, api(chat, "/objects"))
    assert [o["label"] for o in objects.body["objects"]] == ["CHAT/kitchen", "CHAT/lobby"]
