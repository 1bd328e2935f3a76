"""The admin API's OpenAPI 3.1 document, assembled by ``openapi-pydantic`` from the route
table (``routes.ROUTES``) and the models of its bodies (``shapes``)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from aiohttp import web
from openapi_pydantic import (
    Components,
    DataType,
    Info,
    MediaType,
    OpenAPI,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Response,
    Schema,
    SecurityScheme,
)
from openapi_pydantic.util import PydanticSchema, construct_open_api_with_schema_class
from pydantic import BaseModel

from service.admin import keys, shapes
from service.admin.params import Param
from service.admin.routes import PREFIX, Route

#: Why each refusal happens, for the document.
ERRORS = {
    400: "a parameter or the body is invalid (the message says what to give)",
    401: "the token is missing or wrong (only when a token is set)",
    403: "no token is set and the client is not on loopback, or came through a proxy; or a "
    "change while the API is read-only",
    404: "no object by that name or id (or, for a socket, none open by that id)",
    409: "the object to make exists already, or the socket is closing already",
    422: "the history cannot answer (e.g. a log this version cannot replay)",
    503: "the database did not answer (or the object could not run the change)",
    504: "the object runs on another node, which did not answer within the route timeout "
    "(the change may still be made there)",
}

DESCRIPTION = (
    "The history of every object, as the durable history commands show it: the same JSON "
    "shapes as their --json output. Protected by a bearer token (DURABLE_ADMIN_TOKEN); with "
    "none set, served only to clients on the node's loopback. Read-only unless the node "
    "runs with --admin-write: then it forks objects, restores their storage, and closes "
    "their sockets or sends them frames, each recorded in the object's log with who did it."
)


async def serve(request: web.Request) -> web.Response:
    """The document itself."""
    return web.json_response(request.app[keys.DOCUMENT])


#: The document's own endpoint, routed and documented like the others.
ROUTE = Route(
    "GET",
    "/openapi.json",
    "get_openapi",
    serve,
    "This document",
    (),
    None,
)


def document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The OpenAPI document of ``routes``, as JSON."""
    paths: dict[str, PathItem] = {}
    for route in routes:
        item = paths.setdefault(PREFIX + route.path, PathItem())
        setattr(item, route.method.lower(), _operation(route))
    api = OpenAPI(
        # Named although it is the default: only what is set goes into the document.
        openapi=OpenAPI.model_fields["openapi"].default,
        info=Info(
            title="durable-objects admin API",
            version=importlib.metadata.version("durable-objects"),
            description=DESCRIPTION,
        ),
        paths=paths,
        components=Components(
            securitySchemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
        ),
        security=[{"bearer": []}],
    )
    # A stream's first message is described in its text: its model is listed all the same.
    streamed = [r.response for r in routes if r.stream and r.response is not None]
    built = construct_open_api_with_schema_class(api, schema_classes=streamed)
    return built.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)


def _operation(route: Route) -> Operation:
    responses: dict[str, Response] = {str(route.status): _answer(route)}
    for status in _errors(route):
        responses[str(status)] = Response(
            description=ERRORS[status],
            content={"application/json": _json(shapes.ErrorShape)},
        )
    body = None
    if route.body is not None:
        body = RequestBody(
            required=True,
            content={"application/json": _json(route.body)},
        )
    return Operation(
        operationId=route.name,
        summary=route.summary,
        parameters=[_parameter(p) for p in route.params] or None,
        requestBody=body,
        responses=responses,
    )


def _json(model: type[BaseModel]) -> MediaType:
    return MediaType(schema=PydanticSchema(schema_class=model))


def _answer(route: Route) -> Response:
    if route.stream:
        return Response(
            description="Server-Sent Events: first `ready` (data: "
            f"{route.response.__name__ if route.response else 'object'}, id: the point it "
            "starts after), then one `event` per event (data: EventShape, id: its position, "
            "or for one object its seq)",
            content={"text/event-stream": MediaType(schema=Schema(type=DataType.STRING))},
        )
    schema: Schema = (
        Schema(type=DataType.OBJECT)
        if route.response is None
        else PydanticSchema(schema_class=route.response)
    )
    described = "Created" if route.status == 201 else "OK"
    return Response(description=described, content={"application/json": MediaType(schema=schema)})


def _errors(route: Route) -> list[int]:
    statuses = [400, 401, 403, 503]
    if any(p.name in ("ref", "object") for p in route.params):
        statuses.append(404)
    if route.writes:
        statuses.append(409)
    if route.params:
        statuses.append(422)
    if route.routed:
        statuses.append(504)
    return sorted(statuses)


def _parameter(param: Param) -> Parameter:
    kind = {"string": DataType.STRING, "integer": DataType.INTEGER, "boolean": DataType.BOOLEAN}
    schema = Schema(type=kind[param.kind])
    if param.repeated:
        schema = Schema(type=DataType.ARRAY, items=schema)
    fields = {
        "name": param.name,
        "in": param.where,
        "description": param.description,
        "required": param.required,
        "schema": schema,
    }
    if param.repeated:
        fields["explode"] = True
    return Parameter.model_validate(fields)
