"""HTTP routing: health, metrics, static files, and requests to objects (with upgrades)."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote

from aiohttp import hdrs, web

from service.api.application import Application
from service.api.errors import ObjectResetError, StorageUnavailableError
from service.api.http import Request, Response
from service.api.namespace import DurableObjectNamespace
from service.events.log import StoreUnavailableError
from service.gateway import keys, session
from service.runtime.delivery import Delivery
from service.runtime.host import DISCONNECTED_REASON

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 (with the reason) when it does not."""
    try:
        await request.app[keys.PING]()
    except Exception as error:
        return web.json_response({"status": "unavailable", "database": str(error)}, status=503)
    return web.json_response({"status": "ok", "database": "reachable"})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Everything else: a static file, or a request for an object."""
    application = request.app[keys.APPLICATION]
    static = _static_file(application, request.path)
    if static is not None:
        return web.FileResponse(static)
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    body = b"" if upgrade else await request.read()
    api_request = Request(
        str(request.url), method=request.method, headers=request.headers.items(), body=body
    )
    try:
        response = await _route(request, application, api_request)
    except (StorageUnavailableError, StoreUnavailableError, ObjectResetError) as error:
        return _error(503, f"Service unavailable: {error}")
    except LookupError as error:
        return _error(404, str(error))
    if response.websocket is not None:
        socket_id = response.websocket.id
        protocol = response.headers.get("Sec-WebSocket-Protocol")
        # The connection outlives this frame by hours: it must not keep the API objects,
        # whose WebSocket pair leads to the activation and all of the object's state, alive
        # after the object hibernates.
        del response, api_request
        return await _upgrade(request, socket_id, protocol)
    return web.Response(body=response.body, status=response.status, headers=dict(response.headers))


async def _route(request: web.Request, application: Application, api_request: Request) -> Response:
    runtime = request.app[keys.RUNTIME]
    if application.fetch is not None:
        response: Response = await application.fetch(api_request, runtime.env)
        return response
    segments = [unquote(s) for s in request.raw_path.split("?", 1)[0].strip("/").split("/")]
    routes = ", ".join(f"/{name.lower()}/<name>" for name in application.bindings)
    binding = application.binding_for_path(segments[0]) if segments[0] else None
    if binding is None:
        return Response(
            f"Not found: no object binding matches {request.path!r}. Routes: {routes}", status=404
        )
    namespace: DurableObjectNamespace = runtime.env[binding]
    if len(segments) < 2 or not segments[1]:
        return Response(f"Missing object name: use /{binding.lower()}/<name>", status=404)
    if segments[1] == "by-id":
        if len(segments) < 3:
            return Response(f"Missing object id: use /{binding.lower()}/by-id/<id>", status=400)
        try:
            object_id = namespace.id_from_string(segments[2])
        except TypeError as error:
            return Response(f"Bad object id: {error}", status=400)
        stub = namespace.get(object_id)
    else:
        stub = namespace.get_by_name(segments[1])
    return await stub.fetch(api_request)


def _static_file(application: Application, path: str) -> Path | None:
    root = application.static_dir
    if root is None:
        return None
    relative = "index.html" if path == "/" else path.lstrip("/")
    candidate = (root / relative).resolve()
    if not candidate.is_file() or root.resolve() not in candidate.parents:
        return None
    return candidate


async def _upgrade(
    request: web.Request, socket_id: str, protocol: str | None
) -> web.StreamResponse:
    """Complete a 101: attach the client's connection to the socket the object accepted."""
    registry = request.app[keys.REGISTRY]
    runtime = request.app[keys.RUNTIME]
    entry = registry.entries.get(socket_id)
    if entry is None:
        return _error(500, "The accepted WebSocket is unknown to the gateway.")
    ws = web.WebSocketResponse(
        # aiohttp refuses a message of exactly max_msg_size bytes; our limit is inclusive.
        max_msg_size=request.app[keys.LIMITS].max_message_bytes + 1,
        autoclose=True,
        compress=request.app[keys.COMPRESSION],
        autoping=True,
        heartbeat=request.app.get(keys.HEARTBEAT),
        protocols=(protocol,) if protocol else (),
    )
    if not ws.can_prepare(request).ok:
        session.finish(entry, runtime, _disconnected(socket_id))
        registry.remove(socket_id)
        return _error(426, "Expected Upgrade: websocket")
    try:
        await ws.prepare(request)
    except Exception:
        session.finish(entry, runtime, _disconnected(socket_id))
        registry.remove(socket_id)
        raise
    registry.attach(socket_id, ws, request.transport)
    try:
        await session.read_loop(entry, ws, registry, runtime)
    finally:
        registry.remove(socket_id)
    return ws


def _disconnected(socket_id: str) -> Delivery:
    return Delivery("close", socket_id, code=1006, reason=DISCONNECTED_REASON, was_clean=False)


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message)
