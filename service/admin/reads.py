"""The admin API's reads: the catalog, an object's events and log lines, its state at a point,
presence, and the diff between two points, answered with the history commands' JSON shapes."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from service.admin import keys, params
from service.admin.params import Param
from service.history import json_shapes, points
from service.history.event_pages import EventReader

#: Most objects, events and sockets one answer holds.
MOST_OBJECTS = 1000
MOST_EVENTS = 1000
MOST_LINES = 1000
MOST_SOCKETS = 10_000

#: Longest text a search of the catalog by name takes.
MOST_SEARCH = 200

OBJECTS_PARAMS = (
    Param("binding", "only objects of this binding (class)"),
    Param("name", f"only objects whose name holds this text, in any case ({MOST_SEARCH} at most)"),
    Param("live", "true: only objects in memory; false: only hibernated ones", "boolean"),
    Param("cursor", "the cursor of the previous page"),
    Param("limit", f"objects at most (default 100, at most {MOST_OBJECTS})", "integer"),
)

EVENTS_PARAMS = (
    params.REF,
    Param("since", "from this event, or from this time (inclusive): " + points.HELP),
    Param("until", "up to this event, or up to this time (inclusive)"),
    Param("type", "only events of these types (repeated or comma-separated)", repeated=True),
    Param("cursor", "the cursor of the previous page (the seq it ended with)", "integer"),
    Param("limit", f"events at most (default 100, at most {MOST_EVENTS})", "integer"),
    Param(
        "order",
        "asc: oldest first (the default); desc: newest first, each page the events just "
        "below its cursor (the newest page of a long log, then back)",
    ),
)

LOGS_PARAMS = (
    params.REF,
    Param(
        "since",
        "from the turn that ended at this seq (its events' last), or from this time "
        "(inclusive): " + points.HELP,
    ),
    Param("until", "up to the turns that ended at this seq, or up to this time (inclusive)"),
    Param("cursor", "the cursor of the previous page"),
    Param("limit", f"lines at most (default 100, at most {MOST_LINES})", "integer"),
)

STATE_PARAMS = (
    params.REF,
    Param("at", "the state after this event, or at this time (default: now): " + points.HELP),
)

PRESENCE_PARAMS = (
    Param("tag", "only sockets with this tag (e.g. user:ada)"),
    Param("object", "only sockets of this object (BINDING/NAME or id)"),
    Param("at", "as at this ISO 8601 time with its zone (default: now)"),
    Param("limit", f"sockets at most (default 1000, at most {MOST_SOCKETS})", "integer"),
)

DIFF_PARAMS = (
    params.REF,
    Param("from", "from this point: " + points.HELP, required=True),
    Param("to", "to this point (a seq or a time, as from)", required=True),
)


async def objects(request: web.Request) -> web.Response:
    """The catalog, a page at a time."""
    query = request.query
    limit = params.count(query, "limit", default=100, least=1, most=MOST_OBJECTS)
    page = await request.app[keys.HISTORY].objects(
        binding=params.text(query, "binding"),
        live=params.flag(query, "live"),
        after=_object_cursor(params.text(query, "cursor")),
        limit=limit,
        name=params.search(query, "name", most=MOST_SEARCH),
    )
    return answer(
        {
            "objects": [json_shapes.object_info(o) for o in page.objects],
            "cursor": None if page.cursor is None else _encode_cursor(page.cursor),
        }
    )


async def one_object(request: web.Request) -> web.Response:
    """One object of the catalog."""
    found = await request.app[keys.HISTORY].find(request.match_info["ref"])
    return answer(json_shapes.object_info(found))


async def events(request: web.Request) -> web.Response:
    """An object's events in seq order (or newest first), a page at a time."""
    query, history = request.query, request.app[keys.HISTORY]
    since, until = params.point(query, "since"), params.point(query, "until")
    cursor = params.text(query, "cursor")
    after = None if cursor is None else params.number(cursor, "cursor", least=0)
    limit = params.count(query, "limit", default=100, least=1, most=MOST_EVENTS)
    descending = params.choice(query, "order", ("asc", "desc"), default="asc") == "desc"
    found = await history.find(request.match_info["ref"])
    page = await history.events(
        found.object_id,
        since=since,
        until=until,
        types=params.names(query, "type"),
        after=after,
        limit=limit,
        descending=descending,
    )
    reader = EventReader(history)
    reader.name(found.object_id, json_shapes.label_of(found))
    # The reader names senders as it reads forward: a newest-first page is read oldest
    # first, and given back in its own order.
    forward = page.events[::-1] if descending else page.events
    shaped = await reader.shapes(forward)
    return answer(
        {
            "object": json_shapes.object_info(found),
            "events": shaped[::-1] if descending else shaped,
            "cursor": page.cursor,
        }
    )


async def logs(request: web.Request) -> web.Response:
    """What an object's code logged in its turns, in (seq, id) order, a page at a time."""
    query, history = request.query, request.app[keys.HISTORY]
    since, until = params.point(query, "since"), params.point(query, "until")
    after = _line_cursor(params.text(query, "cursor"))
    limit = params.count(query, "limit", default=100, least=1, most=MOST_LINES)
    found = await history.find(request.match_info["ref"])
    page = await history.logs(found.object_id, since=since, until=until, after=after, limit=limit)
    label = json_shapes.label_of(found)
    return answer(
        {
            "object": json_shapes.object_info(found),
            "logs": [json_shapes.log_line(line, label) for line in page.lines],
            "cursor": None if page.cursor is None else "{}:{}".format(*page.cursor),
        }
    )


async def state(request: web.Request) -> web.Response:
    """An object's state after an event or at a time, by the one replay."""
    at = params.point(request.query, "at")
    rebuilt = await request.app[keys.HISTORY].state(request.match_info["ref"], at=at)
    return answer(json_shapes.state(rebuilt))


async def presence(request: web.Request) -> web.Response:
    """The sockets open now, or at a time."""
    query = request.query
    at = params.time(query, "at")
    limit = params.count(query, "limit", default=1000, least=1, most=MOST_SOCKETS)
    rows = await request.app[keys.HISTORY].presence(
        tag=params.text(query, "tag"), ref=params.text(query, "object"), at=at, limit=limit + 1
    )
    return answer(
        {"sockets": [json_shapes.socket(row) for row in rows[:limit]], "more": len(rows) > limit}
    )


async def diff(request: web.Request) -> web.Response:
    """What changed in an object's state from one point to another."""
    first, second = params.point(request.query, "from"), params.point(request.query, "to")
    if first is None or second is None:
        missing = "from" if first is None else "to"
        raise params.BadRequest(f"{missing} is required: {points.HELP}")
    between = await request.app[keys.HISTORY].diff(request.match_info["ref"], first, second)
    return answer(json_shapes.diff(between))


def answer(shape: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON body as the commands print it (non-ASCII kept)."""
    return web.json_response(shape, status=status, dumps=json_shapes.dumps)


def _encode_cursor(cursor: tuple[str, str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(cursor)).encode()).decode().rstrip("=")


def _object_cursor(given: str | None) -> tuple[str, str, str] | None:
    """The catalog's cursor (binding, name, id) from what ``objects`` gave."""
    if given is None:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(given + "=" * (-len(given) % 4)))
    except (binascii.Error, ValueError):
        decoded = None
    if not (isinstance(decoded, list) and len(decoded) == 3):
        raise params.BadRequest(f"cursor {given!r} is not one this API gave: use a page's cursor")
    if not all(isinstance(part, str) for part in decoded):
        raise params.BadRequest(f"cursor {given!r} is not one this API gave: use a page's cursor")
    return (decoded[0], decoded[1], decoded[2])


def _line_cursor(given: str | None) -> tuple[int, int] | None:
    """The log's cursor, ``SEQ:ID``, as ``logs`` gave it."""
    if given is None:
        return None
    seq, colon, ident = given.partition(":")
    if not (colon and seq.isdigit() and ident.isdigit()):
        raise params.BadRequest(f"cursor {given!r} is not one this API gave: use a page's cursor")
    return (int(seq), int(ident))
