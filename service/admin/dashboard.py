"""The admin dashboard's files: a page, its scripts and its stylesheet, shipped in the package
(``static/``) and served as they are, with no build step and nothing fetched from elsewhere.

The files hold no data and no secret: the page asks the admin API for everything it shows,
from the browser, with the API's own token (kept in the tab's ``sessionStorage``, sent as
``Authorization: Bearer``; no cookie, so no request forged from another site carries it).
The headers keep the page to its own origin: scripts, styles and requests of its own only,
and no other site may frame it.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

#: The dashboard's files.
STATIC = Path(__file__).parent / "static"

#: The page itself, at the admin app's root.
PAGE = "index.html"

HEADERS = {
    # Its own scripts, styles and icon, and requests to its own origin (the API): nothing
    # inline, nothing from elsewhere, never inside a frame (no clickjacking).
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Asked again at every load (an ETag answers 304 when unchanged): a node updated to a
    # new version serves its new scripts at once.
    "Cache-Control": "no-cache",
}


#: The type of each kind of file it serves, said rather than guessed (a machine's MIME
#: table may say otherwise, and a module script must come as JavaScript).
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def files() -> dict[str, Path]:
    """Every file the dashboard serves under ``static/``, by name."""
    return {
        path.name: path
        for path in sorted(STATIC.iterdir())
        if path.is_file() and path.suffix in TYPES
    }


def add_routes(router: web.UrlDispatcher) -> None:
    """The page at ``/`` and its files at ``/static/NAME``, as the admin app's routes."""
    served = files()

    async def page(request: web.Request) -> web.FileResponse:
        return _file(STATIC / PAGE)

    async def static(request: web.Request) -> web.FileResponse:
        # Only the files listed when the app was made: no path is ever built from the URL.
        found = served.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return _file(found)

    router.add_get("/", page)
    router.add_get("/static/{name}", static)


def _file(path: Path) -> web.FileResponse:
    """The file (aiohttp answers conditional and range requests), with its type and HEADERS."""
    return web.FileResponse(path, headers={**HEADERS, "Content-Type": TYPES[path.suffix]})
