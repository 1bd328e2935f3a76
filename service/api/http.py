"""Request and Response as user code sees them: plain values, no server types."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from service.api import websocket as websocket_module

if TYPE_CHECKING:
    from service.api.websocket import WebSocket

HeadersInit = Mapping[str, str] | Iterable[tuple[str, str]] | None


class Headers(MutableMapping[str, str]):
    """Case-insensitive header map (one value per name, as ``Headers.get`` in JS)."""

    def __init__(self, init: HeadersInit = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        if init is not None:
            pairs = init.items() if isinstance(init, Mapping) else init
            for name, value in pairs:
                self[name] = value

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, str(value))

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Request:
    """An HTTP request delivered to ``fetch``."""

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: HeadersInit = None,
        body: bytes | str | None = None,
    ) -> None:
        self.url = url
        self.method = method.upper()
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body: bytes = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        parts = urlsplit(url)
        self.path = parts.path or "/"
        #: Query parameters, first value of each name.
        self.query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            self.query.setdefault(name, value)

    async def text(self) -> str:
        return self.body.decode("utf-8")

    async def json(self) -> Any:
        return json.loads(self.body)

    async def bytes(self) -> bytes:
        return self.body

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url})"


class _ClassOrInstance:
    """A name that is one method on the class and another on its instances."""

    def __init__(self, on_class: str, on_instance: str) -> None:
        self._on_class, self._on_instance = on_class, on_instance

    def __get__(self, instance: object, owner: type) -> Any:
        if instance is None:
            return getattr(owner, self._on_class)
        return getattr(instance, self._on_instance)


class Response:
    """An HTTP response; ``status=101`` with ``websocket=client`` completes an upgrade."""

    def __init__(
        self,
        body: str | bytes | None = None,
        status: int = 200,
        headers: HeadersInit = None,
        websocket: WebSocket | None = None,
    ) -> None:
        if websocket is not None:
            if status != 101:
                raise TypeError("A Response with a webSocket must have status 101.")
            websocket_module.use_in_response(websocket)
        elif not 200 <= status <= 599:
            raise ValueError(
                "Responses may only be constructed with status codes in the range 200 to 599, "
                f"inclusive. Got {status}."
            )
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body: bytes = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        if isinstance(body, str) and "content-type" not in self.headers:
            self.headers["Content-Type"] = "text/plain;charset=UTF-8"
        self.websocket = websocket

    @classmethod
    def from_json(cls, data: Any, status: int = 200, headers: HeadersInit = None) -> Response:
        """A JSON response."""
        response = cls(json.dumps(data, ensure_ascii=False), status=status, headers=headers)
        response.headers["Content-Type"] = "application/json"
        return response

    async def read_json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    #: As in the Fetch API: ``Response.json(data)`` builds a JSON response, and
    #: ``await response.json()`` reads one (a stub's answer, say).
    json = _ClassOrInstance("from_json", "read_json")

    async def text(self) -> str:
        return self.body.decode("utf-8")

    def __repr__(self) -> str:
        return f"Response(status={self.status})"
