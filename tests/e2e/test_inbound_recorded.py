"""Every inbound request and alarm run is an event of the turn it starts, and the log with them
still replays to the live state."""

from __future__ import annotations

import base64
import json
import time
from typing import Any, ClassVar

import asyncpg

from service import Application, DurableObject, Request, Response
from service.events import snapshot
from tests.support import eventually, fold_all, replay, serve


class Counter(DurableObject):
    """POST stores its body; ``/boom`` raises after a write; ``?alarm=ms`` sets the alarm,
    whose run fails ``failures`` times before it stores how often it ran."""

    failures: ClassVar[int] = 0

    async def fetch(self, request: Request) -> Response:
        if request.path.endswith("/boom"):
            self.ctx.storage.kv.put("partial", True)
            raise RuntimeError("fetch failed on purpose")
        if "alarm" in request.query:
            await self.ctx.storage.set_alarm(time.time() * 1000 + int(request.query["alarm"]))
        if request.method == "POST":
            self.ctx.storage.kv.put("body", await request.bytes())
        return Response("ok")

    async def alarm(self, alarm_info: Any = None) -> None:
        runs = (self.ctx.storage.kv.get("runs") or 0) + 1
        self.ctx.storage.kv.put("runs", runs)
        if Counter.failures > 0:
            Counter.failures -= 1
            raise RuntimeError("alarm failed on purpose")


async def _events(database_url: str) -> list[tuple[str, dict[str, Any]]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT type, data FROM events ORDER BY seq")
    finally:
        await connection.close()
    return [(r["type"], json.loads(r["data"])) for r in rows]


async def _live_equals_replay(node: Any, database_url: str) -> None:
    (activation,) = node.runtime.activations.values()
    await activation.sync()
    live = snapshot.comparable(activation.state)
    assert snapshot.comparable(await replay(database_url, activation.key)) == live
    assert snapshot.comparable(await fold_all(database_url, activation.key)) == live


async def test_a_request_is_recorded_with_its_headers_and_body_credentials_redacted(
    database_url: str,
) -> None:
    app = Application({"C": Counter})
    async with serve(database_url, app, max_message_bytes=1024, snapshot_every=3) as node:
        response = await node.client.post(
            "/c/one?x=1",
            data="héllo",
            headers={
                "Authorization": "Bearer secret",
                "Cookie": "id=secret",
                "Proxy-Authorization": "Basic secret",
                "X-Trace": "kept",
            },
        )
        assert response.status == 200
        binary = bytes(range(256)) * 2
        assert (await node.client.post("/c/one", data=binary)).status == 200
        big = b"a" * 3000
        assert (await node.client.post("/c/one", data=big)).status == 200
        assert (await node.client.get("/c/one/boom")).status == 500
        await _live_equals_replay(node, database_url)

    events = await _events(database_url)
    requests = [data for kind, data in events if kind == "request_received"]
    assert len(requests) == 4
    text, raw, cut, boom = requests
    assert text["method"] == "POST" and text["url"].endswith("/c/one?x=1")
    headers = text["headers"]
    assert headers["X-Trace"] == "kept"
    for name in ("Authorization", "Cookie", "Proxy-Authorization"):
        assert headers[name] == "[redacted]"
    assert "secret" not in str(events)
    assert (text["text"], text["binary"], text["body_bytes"]) == ("héllo", None, 6)
    assert base64.b64decode(raw["binary"]) == binary and raw["text"] is None
    # Past the inbound size limit, the body is cut; its length says so.
    assert (cut["text"], cut["body_bytes"]) == ("a" * 1024, 3000)
    assert (boom["method"], boom["text"], boom["body_bytes"]) == ("GET", None, 0)
    # Each request first in its own turn; one whose fetch raised keeps only the request.
    kinds = [kind for kind, _ in events]
    assert kinds == [
        "request_received",
        "storage_put",
        "request_received",
        "storage_put",
        "request_received",
        "storage_put",
        "request_received",
    ]


async def test_an_alarm_run_is_recorded_with_its_retry_count(database_url: str) -> None:
    Counter.failures = 1
    async with serve(database_url, Application({"C": Counter})) as node:
        assert (await node.client.get("/c/two?alarm=50")).status == 200

        async def ran_twice() -> bool:
            kinds = [kind for kind, _ in await _events(database_url)]
            return kinds.count("alarm_fired") == 2 and "alarm_set" not in kinds[-3:]

        # The failed run is retried about 2 s later (with jitter).
        await eventually(ran_twice, timeout=10, interval=0.1)
        await _live_equals_replay(node, database_url)

    events = await _events(database_url)
    kinds = [kind for kind, _ in events]
    first = kinds.index("alarm_fired")
    second = kinds.index("alarm_fired", first + 1)
    # The failed run keeps what it was (fired, no longer set) and the retry it schedules;
    # its handler's write is undone. The retry runs, writes and succeeds.
    assert kinds[first:second] == ["alarm_fired", "alarm_deleted", "alarm_set"]
    assert kinds[second:] == ["alarm_fired", "alarm_deleted", "storage_put"]
    assert events[first][1] == {"retry_count": 0, "is_retry": False}
    assert events[second][1] == {"retry_count": 1, "is_retry": True}
    assert events[-1][1] == {"entries": {"runs": 1}}
