"""Live tails over Server-Sent Events: every object's events in commit order, or one
object's by seq, resumable from the last id received (``Last-Event-ID``) or ``from``.

Every object's tail follows the history's watermark (``HistoryService.tail``), so an event
that commits late is never passed: ids are positions, and resuming after one sends what
follows it, without a gap or a repeat. One object's tail reads by seq, which is safe to
follow as it is (``durable events --follow``); its ids are seqs. The first message of
either (event ``ready``) carries the point it starts after as its id, so a client that
reconnects before any event came resumes from there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from service.admin import keys, params
from service.admin.params import Param
from service.history import json_shapes
from service.history.event_pages import EventReader
from service.ports.errors import StoreUnavailableError
from service.ports.history import LoggedEvent

log = logging.getLogger(__name__)

#: Events read per query.
PAGE = 1000

#: The header a reconnecting EventSource sends, with the id of the last message it got.
LAST_EVENT_ID = "Last-Event-ID"

ALL_PARAMS = (
    Param(
        "from",
        "start after this position (0: the whole log; default: what commits from now on); "
        "a Last-Event-ID header wins over it",
        "integer",
    ),
    Param(LAST_EVENT_ID, "the id of the last message received: resume after it", where="header"),
)

ONE_PARAMS = (
    params.REF,
    Param(
        "from",
        "start after this seq (0: from its first event; default: from its next event); a "
        "Last-Event-ID header wins over it",
        "integer",
    ),
    Param(LAST_EVENT_ID, "the seq of the last event received: resume after it", where="header"),
)

#: A page of events after a point, and the point to read after next.
Read = Callable[[int], Awaitable[tuple[list[LoggedEvent], int, bool]]]


async def every_object(request: web.Request) -> web.StreamResponse:
    """Every object's events as they commit."""
    history = request.app[keys.HISTORY]
    start = _start(request)
    if start is None:
        start = await history.head()

    async def read(after: int) -> tuple[list[LoggedEvent], int, bool]:
        page = await history.tail(after, limit=PAGE)
        return page.events, page.position, len(page.events) == PAGE

    return await _stream(request, start, read, lambda logged: logged.position, EventReader(history))


async def one_object(request: web.Request) -> web.StreamResponse:
    """One object's events as they commit, by seq."""
    history = request.app[keys.HISTORY]
    start = _start(request)
    found = await history.find(request.match_info["ref"])
    if start is None:
        start = found.last_seq
    reader = EventReader(history)
    reader.name(found.object_id, json_shapes.label_of(found))

    async def read(after: int) -> tuple[list[LoggedEvent], int, bool]:
        page = await history.events(found.object_id, after=after, limit=PAGE)
        last = page.events[-1].seq if page.events else after
        return page.events, last, page.cursor is not None

    return await _stream(request, start, read, lambda logged: logged.seq, reader)


def _start(request: web.Request) -> int | None:
    """The point to start after: Last-Event-ID (a reconnect), else ``from``, else None."""
    resumed = request.headers.get(LAST_EVENT_ID)
    if resumed is not None and resumed.strip():
        return params.number(resumed.strip(), LAST_EVENT_ID, least=0)
    given = params.text(request.query, "from")
    return None if given is None else params.number(given, "from", least=0)


async def _stream(
    request: web.Request,
    start: int,
    read: Read,
    id_of: Callable[[LoggedEvent], int],
    reader: EventReader,
) -> web.StreamResponse:
    """Send what ``read`` gives, page after page, until the client goes or the node stops."""
    stopping, poll = request.app[keys.STOPPING], request.app[keys.POLL]
    async with sse_response(request) as sse:
        after = start
        try:
            await sse.send(json_shapes.dumps({"after": after}), id=str(after), event="ready")
            while not stopping.is_set() and _connected(request, sse):
                events, after, more = await read(after)
                for logged, shape in zip(events, await reader.shapes(events), strict=True):
                    await sse.send(json_shapes.dumps(shape), id=str(id_of(logged)), event="event")
                if not more:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), poll)
        except ConnectionResetError:
            pass  # the client went away: its next write found the connection reset
        except StoreUnavailableError as error:
            # The answer has begun: no status can say so now. The stream ends, and the
            # client resumes after the last id it got (an EventSource does by itself).
            log.warning("admin API: a tail ends, the database did not answer: %s", error)
    return sse


def _connected(request: web.Request, sse: EventSourceResponse) -> bool:
    transport = request.transport
    return sse.is_connected() and transport is not None and not transport.is_closing()
