"""The dashboard's files as the node serves them: at ``/admin/`` under the API's access rule
but the token (they hold no data and no secret), with headers that keep the page to its own
origin; every file the page asks for is there, and the package ships them all."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import aiohttp
import pytest

from service.admin import access, dashboard
from tests.admin.support import admin_node, get, outward_address
from tests.examples.support import serve_example

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-admin-token-0123456789"

#: What each kind of file is served as (a module script is run only if it comes as
#: JavaScript).
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


def referenced() -> set[str]:
    """Every file the page and its scripts ask for: <script src>, <link href>, and the
    modules each script imports."""
    page = (dashboard.STATIC / dashboard.PAGE).read_text()
    names = set(re.findall(r'(?:src|href)="static/([^"]+)"', page))
    for script in dashboard.STATIC.glob("*.js"):
        names |= set(re.findall(r'from "\./([^"]+)"', script.read_text()))
    return names


def test_every_file_the_page_asks_for_is_shipped_and_nothing_else() -> None:
    files = dashboard.files()
    assert referenced() == set(files) - {dashboard.PAGE}
    assert set(files) == {path.name for path in dashboard.STATIC.iterdir()}
    assert {path.suffix for path in files.values()} <= set(TYPES)
    # Nothing from elsewhere: no absolute URL is ever requested, no inline script runs.
    for path in files.values():
        text = path.read_text()
        assert not re.search(r"""(?:src|href|import|from)\s*=?\s*["'](?:https?:)?//""", text), path
    assert "<script>" not in (dashboard.STATIC / dashboard.PAGE).read_text()


def test_the_wheel_carries_the_dashboard() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["service.admin"]
    shipped = {p.name for pattern in patterns for p in (ROOT / "service" / "admin").glob(pattern)}
    assert shipped == set(dashboard.files())


async def test_the_page_and_its_files_are_served_with_headers_that_keep_it_to_itself(
    database_url: str,
) -> None:
    async with admin_node(database_url) as (url, _), aiohttp.ClientSession() as s:
        async with s.get(f"{url}/admin/") as page:
            assert page.status == 200
            assert page.content_type == "text/html"
            policy = page.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "default-src 'none'" in policy and "connect-src 'self'" in policy
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            assert page.headers["Cache-Control"] == "no-cache"
            assert "Set-Cookie" not in page.headers
            assert '<script type="module" src="static/app.js">' in await page.text()
            etag = page.headers["ETag"]
        async with s.get(f"{url}/admin/", headers={"If-None-Match": etag}) as again:
            assert again.status == 304
        for name, path in dashboard.files().items():
            async with s.get(f"{url}/admin/static/{name}") as response:
                assert response.status == 200, name
                assert response.content_type == TYPES[path.suffix], name
                assert await response.read() == path.read_bytes()
                assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/static/nothing.js",
        "/admin/static/..%2Fserver.py",
        "/admin/static/%2E%2E/dashboard.py",
        "/admin/static/",
        "/admin/settings",
    ],
)
async def test_a_file_that_is_not_the_dashboard_s_is_a_404(database_url: str, path: str) -> None:
    async with (
        admin_node(database_url) as (url, _),
        aiohttp.ClientSession() as s,
        s.get(url + path) as response,
    ):
        assert response.status == 404
        text = await response.text()
        assert "the dashboard is at /admin/" in text
        assert "import" not in text  # no file's content


async def test_admin_without_its_slash_leads_to_the_dashboard(database_url: str) -> None:
    async with admin_node(database_url) as (url, _), aiohttp.ClientSession() as s:
        async with s.get(f"{url}/admin", allow_redirects=False) as response:
            assert response.status == 308
            # Relative: /admin/ here, and the same behind a proxy that adds a prefix.
            assert response.headers["Location"] == "admin/"
        async with s.get(f"{url}/admin") as followed:
            assert followed.status == 200 and str(followed.url) == f"{url}/admin/"
        async with s.post(f"{url}/admin/") as response:
            assert response.status == 405
            assert await response.text() == "POST is not allowed on /admin/: use GET, HEAD\n"


async def test_with_a_token_the_page_is_served_to_anyone_and_its_data_to_the_holder_only(
    database_url: str,
) -> None:
    outward = outward_address()
    async with admin_node(database_url, host="0.0.0.0", admin_token=TOKEN) as (url, _):
        port = url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://{outward}:{port}/admin/") as page:
                assert page.status == 200
                assert TOKEN not in await page.text()
            async with s.get(f"http://{outward}:{port}/admin/static/api.js") as script:
                assert script.status == 200
            refused = await get(s, f"http://{outward}:{port}/admin/api/objects")
            assert (refused.status, refused.body) == (401, {"error": "unauthorized"})


async def test_with_no_token_the_page_is_served_only_as_the_api_is(database_url: str) -> None:
    outward = outward_address()
    async with admin_node(database_url, host="0.0.0.0") as (url, _):
        port = url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as s:
            for path in ("/admin/", "/admin/static/app.js"):
                async with s.get(f"http://{outward}:{port}{path}") as response:
                    assert response.status == 403
                    assert await response.text() == access.NO_TOKEN_REMOTE + "\n"
                headers = {"X-Forwarded-For": "198.51.100.7"}
                async with s.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response:
                    assert response.status == 403
                    assert await response.text() == access.NO_TOKEN_FORWARDED + "\n"
                async with s.get(f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == 200


async def test_without_admin_the_dashboard_s_paths_are_the_application_s(
    database_url: str,
) -> None:
    async with serve_example(database_url, "chat") as node:
        response = await node.client.get("/admin/")
        assert response.status == 404
        assert "no object binding matches '/admin/'" in await response.text()


async def test_a_path_that_only_begins_like_the_dashboard_s_is_the_application_s(
    database_url: str,
) -> None:
    async with (
        admin_node(database_url) as (url, _),
        aiohttp.ClientSession() as s,
        s.get(f"{url}/administrator") as response,
    ):
        assert response.status == 404
        assert "no object binding matches '/administrator'" in await response.text()
