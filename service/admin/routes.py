"""The admin API's endpoints, in one table: the app is routed from it and the OpenAPI
document is made from it, so no endpoint goes undocumented."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from service.admin import params, reads, shapes, tail, writes
from service.admin.params import Param

#: Where the admin app is mounted: the dashboard at ``MOUNT/``, the API under ``PREFIX``.
MOUNT = "/admin"
#: The API's place in the admin app.
API = "/api"
#: Where the admin API is served.
PREFIX = MOUNT + API

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: its method and path (under PREFIX), handler and documentation."""

    method: str
    path: str
    #: Its OpenAPI operationId.
    name: str
    handler: Handler
    summary: str
    params: tuple[Param, ...]
    #: The model of its answer; None: any JSON object.
    response: type[BaseModel] | None
    status: int = 200
    #: Answers with Server-Sent Events (``response`` describes their first one).
    stream: bool = False
    #: The model of its JSON body.
    body: type[BaseModel] | None = None
    #: Changes an object (served only with --admin-write).
    writes: bool = False
    #: Runs on the object's owner, which may be another node (a 504 past the route timeout).
    routed: bool = False


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/objects",
        "list_objects",
        reads.objects,
        "The objects of the catalog, by binding and name (durable objects)",
        reads.OBJECTS_PARAMS,
        shapes.ObjectPageShape,
    ),
    Route(
        "GET",
        "/objects/{ref}",
        "get_object",
        reads.one_object,
        "One object of the catalog",
        (params.REF,),
        shapes.ObjectShape,
    ),
    Route(
        "GET",
        "/objects/{ref}/events",
        "list_events",
        reads.events,
        "An object's events in seq order, a page at a time (durable events)",
        reads.EVENTS_PARAMS,
        shapes.EventPageShape,
    ),
    Route(
        "GET",
        "/objects/{ref}/logs",
        "list_logs",
        reads.logs,
        "What an object's code logged in its turns, by seq, a page at a time (durable logs)",
        reads.LOGS_PARAMS,
        shapes.LogPageShape,
    ),
    Route(
        "GET",
        "/objects/{ref}/state",
        "get_state",
        reads.state,
        "An object's state after an event or at a time, rebuilt by the replay (durable state)",
        reads.STATE_PARAMS,
        shapes.StateShape,
    ),
    Route(
        "GET",
        "/objects/{ref}/diff",
        "get_diff",
        reads.diff,
        "What changed in an object's state between two points (durable diff)",
        reads.DIFF_PARAMS,
        shapes.DiffShape,
    ),
    Route(
        "GET",
        "/objects/{ref}/tail",
        "tail_object",
        tail.one_object,
        "An object's events as they commit, over Server-Sent Events (durable events --follow)",
        tail.ONE_PARAMS,
        shapes.TailStartShape,
        stream=True,
    ),
    Route(
        "POST",
        "/objects/{ref}/fork",
        "fork_object",
        writes.fork,
        "Make a new object from this one's state at an event or a time (durable fork); "
        "needs --admin-write",
        writes.FORK_PARAMS,
        shapes.ForkedShape,
        status=201,
        body=shapes.ForkRequestShape,
        writes=True,
    ),
    Route(
        "POST",
        "/objects/{ref}/restore",
        "restore_object",
        writes.restore,
        "Put the object's storage and alarm back as they were after an event or at a time, "
        "in one of its turns; it is rebuilt on them. Needs --admin-write",
        writes.RESTORE_PARAMS,
        shapes.RestoredShape,
        body=shapes.RestoreRequestShape,
        writes=True,
        routed=True,
    ),
    Route(
        "POST",
        "/objects/{ref}/sockets/{socket_id}/close",
        "close_socket",
        writes.close,
        "Close one of the object's sockets with a code and a reason, as ws.close() in the "
        "object would. Needs --admin-write",
        writes.SOCKET_PARAMS,
        shapes.SocketActionShape,
        body=shapes.CloseRequestShape,
        writes=True,
        routed=True,
    ),
    Route(
        "POST",
        "/objects/{ref}/sockets/{socket_id}/send",
        "send_to_socket",
        writes.send,
        "Send one of the object's sockets a text or a binary frame. Needs --admin-write",
        writes.SOCKET_PARAMS,
        shapes.SocketActionShape,
        body=shapes.SendRequestShape,
        writes=True,
        routed=True,
    ),
    Route(
        "GET",
        "/presence",
        "list_presence",
        reads.presence,
        "The sockets open now, or at a time (durable presence)",
        reads.PRESENCE_PARAMS,
        shapes.PresencePageShape,
    ),
    Route(
        "GET",
        "/tail",
        "tail_all",
        tail.every_object,
        "Every object's events as they commit, in commit order, over Server-Sent Events "
        "(durable tail)",
        tail.ALL_PARAMS,
        shapes.TailStartShape,
        stream=True,
    ),
)
