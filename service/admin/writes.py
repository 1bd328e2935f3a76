"""The admin API's changes to objects, served only with ``--admin-write``; each is recorded
in the object's own log with who made it (``Access.operator_at``).

A fork writes the new object's first event (``object_forked``, which names its source and
its maker), so ``durable events`` of the fork shows who made it and from what.

A restore, a socket's close and a frame sent to a socket are work for a live object: the
node serving the API hands each to the node (``NodeService.operate``), which runs it as one
of the object's turns on its owner (this node, or another through the inbox, as a routed
request goes), and answers once the event recording it is committed, with its seq.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from aiohttp import web

from service.admin import keys, params, reads
from service.admin.params import Param
from service.api import websocket
from service.api.errors import (
    NoHostError,
    ObjectResetError,
    OwnerTimeoutError,
    StorageUnavailableError,
)
from service.api.text import check_text
from service.events import bookmarks
from service.history import json_shapes, points
from service.ports.history import ObjectInfo
from service.ports.operator_actions import (
    Operated,
    OperatorAction,
    PointOutOfRangeError,
    SocketClosingError,
    SocketNotOpenError,
)

FORK_PARAMS = (params.REF,)
RESTORE_PARAMS = (params.REF,)

#: The socket in a path: its id, as presence and the events name it.
SOCKET = Param(
    "socket_id",
    "the socket: its id, as presence and the object's events name it",
    where="path",
    required=True,
)
SOCKET_PARAMS = (params.REF, SOCKET)

#: The answer to a change while the API is read-only (the server gives it for every route
#: that ``writes``, before its handler runs).
READ_ONLY = (
    "the admin API is read-only: start the node with --admin-write (DURABLE_ADMIN_WRITE=1) "
    "to let it change objects"
)

CODE_HELP = "a close code from 1000 to 4999, except 1004, 1005, 1006 and 1015"

#: The answer of an admin API that runs beside no node (built without one).
_NO_NODE = "this admin API runs beside no node, so it cannot change a live object"

#: The answer when the object could not run the change (reset before it, the database
#: away, no host running): nothing of it was committed.
_UNREACHABLE = "the object could not run the change: {error} Nothing was done; try again shortly"


async def fork(request: web.Request) -> web.Response:
    """Make a new object from the state of this one after an event or at a time."""
    access = request.app[keys.ACCESS]
    body = await _body(request, '{"at": 42, "as": "copy"}')
    _only(body, {"at", "as"}, "a fork takes at and as")
    point = _point(body, points.HELP)
    as_name = body.get("as")
    if not isinstance(as_name, str) or not as_name:
        raise params.BadRequest("as is required: the fork's name")
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


async def restore(request: web.Request) -> web.Response:
    """Put the object's storage and alarm back as they were after an event or at a time."""
    access = request.app[keys.ACCESS]
    body = await _body(request, '{"at": 42}')
    _only(body, {"at"}, "a restore takes at")
    point = _point(body, f"{points.HELP}, or a bookmark")
    history = request.app[keys.HISTORY]
    found = await history.find(request.match_info["ref"])
    seq = await history.seq_of(found.object_id, point)
    by = access.operator_at(peer(request))
    done = await _operate(request, found, OperatorAction("restore", by, seq=seq))
    if isinstance(done, web.Response):
        return done
    return reads.answer(
        {
            "object_id": found.object_id,
            "seq": done.seq,
            "from_seq": seq,
            "bookmark": bookmarks.of_seq(seq),
            "by": by,
            "keys": done.keys,
            "alarm_ms": done.alarm_ms,
        }
    )


async def close(request: web.Request) -> web.Response:
    """Close one of the object's sockets with a code and a reason."""
    access = request.app[keys.ACCESS]
    body = await _body(request, '{"code": 4000, "reason": "bye"}')
    _only(body, {"code", "reason"}, "a close takes code and reason")
    code, reason = body.get("code", 1000), body.get("reason", "")
    if isinstance(code, bool) or not isinstance(code, int):
        raise params.BadRequest(f"code must be {CODE_HELP}, not {json.dumps(code)}")
    if not websocket.sendable_close_code(code):
        raise params.BadRequest(f"code must be {CODE_HELP}, not {code}")
    if not isinstance(reason, str):
        raise params.BadRequest(f"reason must be a string, not {json.dumps(reason)}")
    limit = request.app[keys.LIMITS].max_close_reason_bytes
    size = len(_text(reason, "reason"))
    if size > limit:
        raise params.BadRequest(
            f"reason is {size} bytes of UTF-8: a close reason has at most {limit}"
        )
    by = access.operator_at(peer(request))
    action = OperatorAction(
        "close", by, socket_id=request.match_info["socket_id"], code=code, reason=reason
    )
    return await _socket_action(request, action)


async def send(request: web.Request) -> web.Response:
    """Send one of the object's sockets a text or a binary frame."""
    access = request.app[keys.ACCESS]
    limit = request.app[keys.LIMITS].max_message_bytes
    # A binary frame's base64 is a third longer, and JSON may escape each character of a
    # text in up to six: the body may be that much larger than the frame.
    body = await _body(request, '{"text": "hello"}', most=6 * limit + 4096)
    _only(body, {"text", "base64"}, "a send takes text or base64")
    given = [name for name in ("text", "base64") if body.get(name) is not None]
    if len(given) != 1:
        raise params.BadRequest(
            'give exactly one of text (a text frame) and base64 (a binary frame), e.g. {"text": '
            '"hello"}'
        )
    data: str | bytes
    if given == ["text"]:
        data = body["text"]
        if not isinstance(data, str):
            raise params.BadRequest(f"text must be a string, not {json.dumps(data)}")
        size = len(_text(data, "text", nul=True))
    else:
        encoded = body["base64"]
        if not isinstance(encoded, str):
            raise params.BadRequest(f"base64 must be a string, not {json.dumps(encoded)}")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise params.BadRequest("base64 is not valid base64 (RFC 4648)") from None
        size = len(data)
    if size > limit:
        raise params.BadRequest(
            f"the frame is {size} bytes: a frame has at most {limit} (the message size "
            "limit, --max-message-bytes)"
        )
    by = access.operator_at(peer(request))
    action = OperatorAction("send", by, socket_id=request.match_info["socket_id"], data=data)
    return await _socket_action(request, action)


async def _socket_action(request: web.Request, action: OperatorAction) -> web.Response:
    found = await request.app[keys.HISTORY].find(request.match_info["ref"])
    done = await _operate(request, found, action)
    if isinstance(done, web.Response):
        return done
    return reads.answer(
        {
            "object_id": found.object_id,
            "socket_id": action.socket_id,
            "seq": done.seq,
            "by": action.by,
        }
    )


async def _operate(
    request: web.Request, found: ObjectInfo, action: OperatorAction
) -> Operated | web.Response:
    """The action done by the object's owner, or the answer saying why not."""
    node = request.app.get(keys.NODE)
    if node is None:
        return reads.answer({"error": _NO_NODE}, 503)
    try:
        return await node.operate(found.object_id, found.binding, found.name, action)
    except SocketNotOpenError as error:
        return reads.answer({"error": str(error)}, 404)
    except SocketClosingError as error:
        return reads.answer({"error": str(error)}, 409)
    except PointOutOfRangeError as error:
        return reads.answer({"error": str(error)}, 400)
    except OwnerTimeoutError as error:
        return reads.answer({"error": str(error)}, 504)
    except (StorageUnavailableError, NoHostError, ObjectResetError) as error:
        return reads.answer({"error": _UNREACHABLE.format(error=_sentence(error))}, 503)
    except LookupError as error:
        if type(error) is not LookupError:
            raise  # a KeyError or IndexError is a bug somewhere, not a missing object
        return reads.answer({"error": str(error)}, 404)


def _sentence(error: Exception) -> str:
    text = str(error).strip()
    return text if text.endswith(".") else text + "."


def _point(body: dict[str, Any], help: str) -> int | datetime:
    """The body's ``at``: a seq or a time (``help`` says what it may be)."""
    at = body.get("at")
    if isinstance(at, bool) or not isinstance(at, int | str):
        raise params.BadRequest(f"at is required: {help}")
    try:
        return points.point(str(at), "at")
    except points.PointError as error:
        raise params.BadRequest(str(error)) from None


def _only(body: dict[str, Any], fields: set[str], takes: str) -> None:
    if unknown := sorted(set(body) - fields):
        raise params.BadRequest(f"unknown field {unknown[0]!r}: {takes}")


def _text(text: str, name: str, *, nul: bool = False) -> bytes:
    """``text`` as UTF-8; a 400 if it cannot be (a lone surrogate, or NUL where the log
    keeps it as text)."""
    try:
        if nul:
            return text.encode("utf-8")
        return check_text(text, name)
    except UnicodeEncodeError:
        raise params.BadRequest(
            f"{name} must be valid Unicode text (it has a lone surrogate)"
        ) from None
    except TypeError as error:
        raise params.BadRequest(str(error)) from None


def peer(request: web.Request) -> str | None:
    """The TCP peer's address (never a header's)."""
    transport = request.transport
    name = transport.get_extra_info("peername") if transport is not None else None
    return str(name[0]) if isinstance(name, tuple) and name else None


async def _body(request: web.Request, example: str, *, most: int | None = None) -> dict[str, Any]:
    try:
        read = request if most is None else request.clone(client_max_size=most)
        raw = await read.read()
    except web.HTTPRequestEntityTooLarge:
        raise params.BadRequest(f"the body is over {most} bytes: send a smaller frame") from None
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise params.BadRequest("the body is not JSON: send a JSON object") from None
    if not isinstance(body, dict):
        raise params.BadRequest(f"the body must be a JSON object (e.g. {example})")
    return body
