"""The admin API's changes to objects, served only with ``--admin-write``; each is recorded
in the log with who made it (``Access.operator_at``).

A fork writes the new object's first event (``object_forked``, which names its source and
its maker), so ``durable events`` of the fork shows who made it and from what.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from service.admin import keys, params, reads
from service.history import json_shapes, points

FORK_PARAMS = (params.REF,)

#: The answer to a change while the API is read-only.
READ_ONLY = (
    "the admin API is read-only: start the node with --admin-write (DURABLE_ADMIN_WRITE=1) "
    "to let it change objects"
)


async def fork(request: web.Request) -> web.Response:
    """Make a new object from the state of this one after an event or at a time."""
    access = request.app[keys.ACCESS]
    if not access.write:
        return reads.answer({"error": READ_ONLY}, status=403)
    body = await _body(request)
    if unknown := sorted(set(body) - {"at", "as"}):
        raise params.BadRequest(f"unknown field {unknown[0]!r}: a fork takes at and as")
    at, as_name = body.get("at"), body.get("as")
    if isinstance(at, bool) or not isinstance(at, int | str):
        raise params.BadRequest(f"at is required: {points.HELP}")
    if not isinstance(as_name, str) or not as_name:
        raise params.BadRequest("as is required: the fork's name")
    try:
        point = points.point(str(at), "at")
    except points.PointError as error:
        raise params.BadRequest(str(error)) from None
    history = request.app[keys.HISTORY]
    source = await history.find(request.match_info["ref"])
    made = await history.fork(
        source.object_id,
        at=point,
        as_name=as_name,
        unique_key=request.app[keys.UNIQUE_KEYS].get(source.binding),
        by=access.operator_at(peer(request)),
    )
    return reads.answer(json_shapes.forked(made), status=201)


def peer(request: web.Request) -> str | None:
    """The TCP peer's address (never a header's)."""
    transport = request.transport
    name = transport.get_extra_info("peername") if transport is not None else None
    return str(name[0]) if isinstance(name, tuple) and name else None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        raise params.BadRequest("the body is not JSON: send a JSON object") from None
    if not isinstance(body, dict):
        raise params.BadRequest('the body must be a JSON object (e.g. {"at": 42, "as": "copy"})')
    return body
