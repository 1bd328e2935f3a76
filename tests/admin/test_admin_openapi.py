"""The OpenAPI document the admin API serves: valid OpenAPI 3.1, and naming every route the
node routes, with its parameters, no more and no fewer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from openapi_spec_validator import validate

from service.admin import openapi, routes
from tests.admin.support import admin_node, get

README = Path(__file__).resolve().parents[2] / "README.md"


def admin_routes(webapp: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route of the mounted admin app (the API's and the
    dashboard's)."""
    (mounted,) = [
        resource
        for resource in webapp.router.resources()
        if isinstance(resource, web.PrefixedSubAppResource)
    ]
    # Mounted, its resources carry the prefix.
    return {
        (route.method, route.resource.canonical)
        for route in mounted._app.router.routes()
        if route.resource is not None
    }


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


async def test_the_document_is_valid_and_names_every_route(database_url: str) -> None:
    async with admin_node(database_url) as (url, node), aiohttp.ClientSession() as session:
        answer = await get(session, f"{url}/admin/api/openapi.json")
        assert answer.status == 200
        document = answer.body
        validate(document)
        # Every route of the admin app is documented, but the dashboard's files.
        every = admin_routes(node.webapp)
        api = {(method, path) for method, path in every if path.startswith(routes.PREFIX + "/")}
        assert documented(document) == api
        assert len(documented(document)) == len(routes.ROUTES) + 1
        assert every - api == {
            (method, path)
            for method in ("GET", "HEAD")
            for path in ("/admin/", "/admin/static/{name}")
        }

        # Each route's path parameters are declared, and every answer has a schema.
        for path, item in document["paths"].items():
            for operation in item.values():
                declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
                assert declared == set(re.findall(r"{(\w+)}", path)), path
                for status, response in operation["responses"].items():
                    assert response["content"], (path, status)
        schemas = document["components"]["schemas"]
        assert {"ObjectShape", "EventShape", "StateShape", "DiffShape", "PresenceShape"} <= set(
            schemas
        )
        assert document["components"]["securitySchemes"]["bearer"] == {
            "type": "http",
            "scheme": "bearer",
        }


def test_the_readme_lists_every_endpoint() -> None:
    section = README.read_text().split("\n## Admin API\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(GET|POST) (/admin/api/[^?`]*)", section, re.MULTILINE))
    every = {(r.method, routes.PREFIX + r.path) for r in (*routes.ROUTES, openapi.ROUTE)}
    assert listed == every
