"""The admin app, mounted by the node's gateway at ``routes.MOUNT``: the API under
``routes.PREFIX``, and the dashboard that reads it at ``routes.MOUNT`` + ``/``."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping

from aiohttp import web

from service.admin import access, dashboard, keys, openapi, params, reads, writes
from service.admin.routes import API, MOUNT, PREFIX, ROUTES, Handler, Route
from service.api.limits import Limits
from service.ports.errors import ConflictError, StoreUnavailableError
from service.ports.history import (
    AmbiguousObjectError,
    HistoryError,
    HistoryService,
    ObjectExistsError,
    OutOfHistoryError,
    UnknownObjectError,
)
from service.ports.node import NodeService

log = logging.getLogger(__name__)

#: Seconds between a tail's reads once it has caught up (nodes send no NOTIFY per flush).
POLL = 0.1


def create_admin(
    history: HistoryService,
    rules: access.Access,
    *,
    unique_keys: Mapping[str, str],
    node: NodeService | None = None,
    limits: Limits | None = None,
    poll: float = POLL,
) -> web.Application:
    """The admin app over ``history`` (the API and the dashboard), guarded by ``rules``;
    ``unique_keys`` maps each binding to its namespace's key (a fork's id is derived with
    it). ``node`` runs the changes to live objects (restores, a socket's close or frame),
    within ``limits``."""
    app = web.Application(middlewares=[_guard])
    app[keys.HISTORY] = history
    if node is not None:
        app[keys.NODE] = node
    app[keys.LIMITS] = limits or Limits()
    app[keys.ACCESS] = rules
    app[keys.UNIQUE_KEYS] = dict(unique_keys)
    app[keys.STOPPING] = asyncio.Event()
    app[keys.POLL] = poll
    every = (*ROUTES, openapi.ROUTE)
    app[keys.DOCUMENT] = openapi.document(every)
    for route in every:
        app.router.add_route(route.method, API + route.path, _checked(route))
    dashboard.add_routes(app.router)
    app.on_shutdown.append(_stop_tails)
    return app


def _checked(route: Route) -> Handler:
    """The route's handler, after refusing query parameters it does not take, and a change
    while the API is read-only."""

    @functools.wraps(route.handler)
    async def handler(request: web.Request) -> web.StreamResponse:
        params.unknown(request.query, route.params)
        if route.writes and not request.app[keys.ACCESS].write:
            return reads.answer({"error": writes.READ_ONLY}, status=403)
        return await route.handler(request)

    return handler


def _in_api(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Access first (for every path, known or not), then the history's errors as JSON; the
    dashboard's files (not the API) are served without the token, and answer in text."""
    if not _in_api(request.path):
        return await _page(request, handler)
    refusal = access.check(request.app[keys.ACCESS], request.headers, writes.peer(request))
    if refusal is not None:
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        answer = reads.answer({"error": refusal.message}, refusal.status)
        if headers:
            answer.headers.update(headers)
        return answer
    try:
        return await handler(request)
    except (params.BadRequest, AmbiguousObjectError, OutOfHistoryError) as error:
        return reads.answer({"error": str(error)}, 400)
    except UnknownObjectError as error:
        return reads.answer({"error": str(error)}, 404)
    except (ObjectExistsError, ConflictError) as error:
        return reads.answer({"error": str(error)}, 409)
    except HistoryError as error:
        return reads.answer({"error": str(error)}, 422)
    except StoreUnavailableError as error:
        log.warning("admin API: the database did not answer: %s", error)
        return reads.answer({"error": "the database did not answer: try again shortly"}, 503)
    except web.HTTPNotFound:
        return reads.answer(
            {"error": f"no endpoint {request.path}: see {PREFIX}/openapi.json"}, 404
        )
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        return reads.answer(
            {"error": f"{request.method} is not allowed on {request.path}: use {allowed}"}, 405
        )


async def _page(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One of the dashboard's files, to whom ``access.check_page`` lets have it."""
    rules = request.app[keys.ACCESS]
    refusal = access.check_page(rules, request.headers, writes.peer(request))
    if refusal is not None:
        return web.Response(text=refusal.message + "\n", status=refusal.status)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path == MOUNT:
            # Relative, so that it holds behind a proxy that serves the admin elsewhere.
            raise web.HTTPPermanentRedirect(MOUNT.rsplit("/", 1)[-1] + "/") from None
        return web.Response(
            text=f"no page {request.path}: the dashboard is at {MOUNT}/\n", status=404
        )
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        return web.Response(
            text=f"{request.method} is not allowed on {request.path}: use {allowed}\n",
            status=405,
            headers={"Allow": allowed},
        )


async def _stop_tails(app: web.Application) -> None:
    """Shutting down: open tails end, rather than hold the shutdown for its whole timeout."""
    app[keys.STOPPING].set()
