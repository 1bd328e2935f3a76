"""Namespaces (``env.CHAT``), stubs, and the ``env`` object handed to objects."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from service.api.http import HeadersInit, Request, Response
from service.api.ids import DurableObjectId, IdFactory

if TYPE_CHECKING:
    pass


class ObjectHost(Protocol):
    """Delivers requests to objects (implemented by the runtime)."""

    async def fetch(self, binding: str, object_id: DurableObjectId, request: Request) -> Response:
        """Run ``fetch`` of the object and return its response once its events are committed."""


class DurableObjectStub:
    """A handle on one object; making one sends nothing, the first call wakes the object."""

    def __init__(self, binding: str, host: ObjectHost, object_id: DurableObjectId) -> None:
        self._binding = binding
        self._host = host
        self.id = object_id
        self.name = object_id.name

    async def fetch(
        self,
        request: Request | str,
        *,
        method: str = "GET",
        headers: HeadersInit = None,
        body: bytes | str | None = None,
    ) -> Response:
        if isinstance(request, str):
            request = Request(request, method=method, headers=headers, body=body)
        return await self._host.fetch(self._binding, self.id, request)

    def __repr__(self) -> str:
        return f"DurableObjectStub({self._binding}, {self.id!r})"


class DurableObjectNamespace:
    """``env.<BINDING>``: makes ids and stubs for one class."""

    def __init__(self, binding: str, unique_key: str, host: ObjectHost):
        self.binding = binding
        self._ids = IdFactory(unique_key)
        self._host = host

    def id_from_name(self, name: str) -> DurableObjectId:
        return self._ids.from_name(name)

    def id_from_string(self, hex_id: str) -> DurableObjectId:
        return self._ids.from_string(hex_id)

    def new_unique_id(self, *, jurisdiction: str | None = None) -> DurableObjectId:
        if jurisdiction is not None:
            raise TypeError("Jurisdiction restrictions are not implemented.")
        return self._ids.unique()

    def get(self, object_id: DurableObjectId) -> DurableObjectStub:
        if not isinstance(object_id, DurableObjectId):
            raise TypeError("get() expects a DurableObjectId.")
        return DurableObjectStub(self.binding, self._host, object_id)

    def get_by_name(self, name: str) -> DurableObjectStub:
        return self.get(self.id_from_name(name))


class Env(Mapping[str, Any]):
    """``env``: one attribute per binding (``env.CHAT``) plus the application's vars."""

    def __init__(self, entries: Mapping[str, Any]) -> None:
        self._entries = dict(entries)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            raise AttributeError(f"env has no binding or var named {name!r}") from None

    def __getitem__(self, name: str) -> Any:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
