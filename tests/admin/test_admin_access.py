"""Who may use the admin API: the token's holder (401 and nothing more for anyone else),
or with no token set, loopback clients that no proxy forwarded; and nobody when it is off."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from service import cli
from service.admin import access
from service.admin.access import Access
from service.app import admin_banner
from service.settings import Settings
from tests.admin.support import admin_node, get, outward_address
from tests.examples.support import serve_example

TOKEN = "s3cret-admin-token-0123456789"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "longer", "basic", "bare", "empty"],
)
async def test_a_missing_or_wrong_token_is_a_bare_401(
    database_url: str, headers: dict[str, str]
) -> None:
    async with (
        admin_node(database_url, admin_token=TOKEN) as (url, _),
        aiohttp.ClientSession() as s,
    ):
        for path in ("/objects", "/objects/CHAT%2Fnowhere", "/no-such-endpoint", "/openapi.json"):
            answer = await get(s, f"{url}/admin/api{path}", **headers)
            assert (answer.status, answer.body) == (401, {"error": "unauthorized"}), path
            assert answer.headers["WWW-Authenticate"] == "Bearer"


async def test_the_right_token_opens_every_endpoint(database_url: str) -> None:
    async with (
        admin_node(database_url, admin_token=TOKEN) as (url, _),
        aiohttp.ClientSession() as s,
    ):
        for scheme in ("Bearer", "bearer"):
            answer = await get(s, f"{url}/admin/api/objects", Authorization=f"{scheme} {TOKEN}")
            assert (answer.status, answer.body) == (200, {"objects": [], "cursor": None})
        unknown = await get(
            s, f"{url}/admin/api/objects/CHAT%2Fnowhere", Authorization=f"Bearer {TOKEN}"
        )
        assert unknown.status == 404


async def test_with_no_token_loopback_clients_are_served(database_url: str) -> None:
    async with admin_node(database_url) as (url, _), aiohttp.ClientSession() as s:
        answer = await get(s, f"{url}/admin/api/objects")
        assert (answer.status, answer.body) == (200, {"objects": [], "cursor": None})


async def test_with_no_token_a_client_from_elsewhere_is_refused(database_url: str) -> None:
    """The node listens on every address; a client reaching it by the machine's own outward
    address is no loopback client, whatever X-Forwarded-For it claims."""
    outward = outward_address()
    async with admin_node(database_url, host="0.0.0.0") as (url, _):
        port = url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as s:
            for headers in ({}, {"X-Forwarded-For": "127.0.0.1"}):
                answer = await get(s, f"http://{outward}:{port}/admin/api/objects", **headers)
                assert answer.status == 403
                assert answer.body == {"error": access.NO_TOKEN_REMOTE}
            # The same node, the same client, by loopback: served.
            local = await get(s, f"http://127.0.0.1:{port}/admin/api/objects")
            assert local.status == 200
            # And its application is not the admin API's business: served to anyone.
            health = await s.get(f"http://{outward}:{port}/healthz")
            assert health.status == 200


async def test_with_a_token_a_client_from_elsewhere_is_served(database_url: str) -> None:
    outward = outward_address()
    async with admin_node(database_url, host="0.0.0.0", admin_token=TOKEN) as (url, _):
        port = url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as s:
            answer = await get(
                s, f"http://{outward}:{port}/admin/api/objects", Authorization=f"Bearer {TOKEN}"
            )
            assert answer.status == 200


@pytest.mark.parametrize("header", ["Forwarded", "X-Forwarded-For", "X-Real-IP"])
async def test_with_no_token_a_request_a_proxy_forwarded_is_refused(
    database_url: str, header: str
) -> None:
    """A reverse proxy on this machine connects from loopback: without a token, its
    clients must not pass for local ones."""
    async with admin_node(database_url) as (url, _), aiohttp.ClientSession() as s:
        answer = await get(s, f"{url}/admin/api/objects", **{header: "for=203.0.113.9"})
        assert (answer.status, answer.body) == (403, {"error": access.NO_TOKEN_FORWARDED})


async def test_the_admin_api_is_off_by_default(database_url: str) -> None:
    """Without --admin its paths are the application's, as any other path."""
    async with serve_example(database_url, "chat") as node:
        response = await node.client.get("/admin/api/objects")
        assert response.status == 404
        assert "no object binding matches '/admin/api/objects'" in await response.text()


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.7", False),
        ("::ffff:192.0.2.7", False),
        ("fd00::2", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
        ("localhost", False),
    ],
)
def test_what_counts_as_loopback(peer: str | None, loopback: bool) -> None:
    assert access.is_loopback(peer) is loopback
    refusal = access.check(Access(), {}, peer)
    assert (refusal is None) is loopback


def test_the_token_is_compared_whole() -> None:
    rules = Access(token=TOKEN)
    assert access.check(rules, {"Authorization": f"Bearer {TOKEN}"}, "192.0.2.7") is None
    for given in (TOKEN[:-1], TOKEN + " x", TOKEN.upper(), ""):
        refusal = access.check(rules, {"Authorization": f"Bearer {given}"}, "127.0.0.1")
        assert refusal == access.Refusal(401, "unauthorized")


def test_who_made_a_change_is_the_operator_and_the_client_address() -> None:
    assert Access().operator_at("127.0.0.1") == "admin-api from 127.0.0.1"
    assert Access(operator="ada").operator_at("::1") == "ada (admin-api from ::1)"


def test_a_short_token_is_refused_without_being_shown(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.run(["serve", "examples/chat", "--admin-token", "tiny-secret"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--admin-token / DURABLE_ADMIN_TOKEN" in err and "16" in err
    assert "tiny-secret" not in err


@pytest.mark.parametrize(
    ("settings", "banner"),
    [
        ({}, "Admin API: off (--admin serves it)"),
        (
            {"admin": True},
            "Admin API at http://[::1]:80/admin/api/ (read-only; no token set: loopback "
            "clients only)\nAdmin dashboard at http://[::1]:80/admin/",
        ),
        (
            {"admin": True, "admin_token": TOKEN, "admin_write": True},
            "Admin API at http://[::1]:80/admin/api/ (read-write; bearer token required)\n"
            "Admin dashboard at http://[::1]:80/admin/",
        ),
    ],
)
def test_the_start_banner_says_where_the_admin_api_is_and_who_may_use_it(
    settings: dict[str, Any], banner: str
) -> None:
    assert admin_banner(Settings(**settings), "http://[::1]:80") == banner
    assert TOKEN not in banner
