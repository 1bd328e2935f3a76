"""HTTP routing: health, metrics, static files, and requests to objects (with upgrades)."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web
from yarl import URL

from service.api.application import Application
from service.api.errors import (
    NoHostError,
    ObjectResetError,
    OwnerTimeoutError,
    StorageUnavailableError,
)
from service.api.http import Request, Response
from service.api.namespace import DurableObjectNamespace
from service.gateway import handshake, keys, session

log = logging.getLogger(__name__)

#: What no file name can hold: a NUL, a name over 255 bytes, a path over 4096 (Linux's
#: NAME_MAX and PATH_MAX). Such a path is no static file, so the disk is not asked.
_NAME_MAX = 255
_PATH_MAX = 4096

#: The answer when the database cannot take or give an object's events. The driver's own
#: text (addresses, SQL errors) is for the log, not for clients.
_UNAVAILABLE = (
    "Service unavailable: the database is unavailable (unreachable, or it refused the "
    "write), so the object's event log could not commit or be read. Try again shortly."
)

#: The answer when the node that runs the object did not reply to the request in time.
_OWNER_TIMEOUT = (
    "Gateway timeout: the object runs on another node, which did not answer in time. The "
    "request may still run there; send it again only if that is safe."
)

#: The answer of a host to a client: it runs objects, and clients belong on gateways.
_MISDIRECTED = (
    "Misdirected request: this node is a host (--role host): it runs objects and serves no "
    "client. Send requests and WebSocket connections to a gateway (or a node of role all); "
    "the load balancer should list only those."
)

#: The answer of a gateway while no node that runs objects is live.
_NO_HOST = (
    "Service unavailable: no host is running (no live node of role host or all), so the "
    "object cannot run. Nothing was done; try again once a host has started."
)

#: Seconds a client is told to wait when no host runs (a host starts in about that long).
_NO_HOST_RETRY_AFTER = "5"


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 when it does not (the driver's error is logged)."""
    try:
        await request.app[keys.PING]()
    except Exception as error:
        log.warning("health check: the database does not answer: %s", error)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "database": "reachable"})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Everything else: a static file, or a request for an object (not on a host)."""
    if request.app[keys.ROLE] == "host":
        return _error(421, _MISDIRECTED)
    application = request.app[keys.APPLICATION]
    static = _static_file(application, request)
    if static is not None:
        return web.FileResponse(static)
    upgrade = handshake.wants_websocket(request)
    if upgrade:
        # Before the object runs: it must not accept a socket that cannot be opened.
        refusal = handshake.refusal(request)
        if refusal is not None:
            return refusal
    body = b"" if upgrade else await request.read()
    api_request = Request(
        _url(request), method=request.method, headers=request.headers.items(), body=body
    )
    try:
        response = await _route(request, application, api_request)
    except OwnerTimeoutError as error:
        log.warning("answered 504: %s", error)
        return _error(504, _OWNER_TIMEOUT)
    except StorageUnavailableError as error:
        log.info("answered 503: %s", error)
        return _error(503, _UNAVAILABLE)
    except NoHostError as error:
        log.warning("answered 503: %s", error)
        return web.Response(
            status=503, text=_NO_HOST, headers={"Retry-After": _NO_HOST_RETRY_AFTER}
        )
    except ObjectResetError as error:
        return _error(503, f"Service unavailable: {_reset_reason(error)}")
    except LookupError as error:
        if type(error) is not LookupError:
            raise  # a KeyError or IndexError is a bug somewhere, not a missing object
        return _error(404, str(error))
    if response.websocket is not None:
        socket_id = response.websocket.id
        protocol = response.headers.get("Sec-WebSocket-Protocol")
        # The connection outlives this frame by hours: it must not keep the API objects,
        # whose WebSocket pair leads to the activation and all of the object's state, alive
        # after the object hibernates.
        del response, api_request
        upgraded = await session.upgrade(request, socket_id, protocol)
        if isinstance(upgraded, web.Response):
            return upgraded
        entry, ws = upgraded
        del upgraded  # a tuple kept for the connection's life is 64 bytes per socket
        registry, node = request.app[keys.REGISTRY], request.app[keys.NODE]
        # The connection's whole life runs in this coroutine, not in one it awaits: a node
        # keeps one suspended frame per open socket.
        try:
            while session.receive(entry, await ws.receive(), registry, node):
                pass
            await session.reply_to_close(entry)
        except Exception as error:  # a dropped connection surfaces differently by platform
            log.debug("connection lost: %r", error, extra={"object_id": entry.object_id})
        finally:
            session.ended(entry, registry, node)
        return ws
    return web.Response(body=response.body, status=response.status, headers=dict(response.headers))


async def _route(request: web.Request, application: Application, api_request: Request) -> Response:
    env = request.app[keys.NODE].env
    if application.fetch is not None:
        response: Response = await application.fetch(api_request, env)
        return response
    segments = [unquote(s) for s in request.raw_path.split("?", 1)[0].strip("/").split("/")]
    routes = ", ".join(f"/{name.lower()}/<name>" for name in application.bindings)
    binding = application.binding_for_path(segments[0]) if segments[0] else None
    if binding is None:
        return Response(
            f"Not found: no object binding matches {request.path!r}. Routes: {routes}", status=404
        )
    namespace: DurableObjectNamespace = env[binding]
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
        try:
            stub = namespace.get_by_name(segments[1])
        except TypeError as error:
            return Response(f"Bad object name: {error}", status=400)
    return await stub.fetch(api_request)


def _url(request: web.Request) -> str:
    """``request.url`` as aiohttp builds it, without keeping it in the request's cache: an
    upgraded request lives as long as its connection, and a URL object is 200 bytes."""
    return str(URL.build(scheme=request.scheme, authority=request.host).join(request.rel_url))


def _static_file(application: Application, request: web.Request) -> Path | None:
    """The file under the application's static folder that the request names, if any.

    ``request.path`` is read only when there is such a folder: aiohttp caches it in the
    request, which an upgraded connection keeps for its whole life."""
    root = application.static_dir
    if root is None:
        return None
    path = request.path
    if not _could_be_file(path):
        return None
    relative = "index.html" if path == "/" else path.lstrip("/")
    try:
        candidate = (root / relative).resolve()
        if not candidate.is_file() or root.resolve() not in candidate.parents:
            return None
    except OSError:  # unreadable, a loop of links...: not a file to serve
        return None
    return candidate


def _could_be_file(path: str) -> bool:
    if "\x00" in path or _size(path) > _PATH_MAX:
        return False
    return all(_size(name) <= _NAME_MAX for name in path.split("/"))


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _reset_reason(error: ObjectResetError) -> str:
    """The reset's reason, which the object chose or the reference defines, unless it is
    the runtime's own description of a fault (logged where it happened)."""
    reason = str(error)
    if reason.lower().startswith("internal error"):
        return "the object was reset after an internal error. Try again."
    return reason


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message)
