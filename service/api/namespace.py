"""Namespaces (``env.CHAT``), stubs, and the ``env`` object handed to objects."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from service.api import core as core_module
from service.api import rpc
from service.api.errors import DurableObjectError
from service.api.http import HeadersInit, Request, Response
from service.api.ids import DurableObjectId, IdFactory
from service.api.limits import Limits

if TYPE_CHECKING:
    pass


class ObjectHost(Protocol):
    """Delivers requests to objects (implemented by the runtime)."""

    async def fetch(self, binding: str, object_id: DurableObjectId, request: Request) -> Response:
        """Run ``fetch`` of the object and return its response once its events are committed."""

    #: The limits calls are checked against (arguments and results: ``max_message_bytes``).
    limits: Limits

    async def call(self, binding: str, object_id: DurableObjectId, call: rpc.Call) -> rpc.Outcome:
        """Run a method of the object as one of its deliveries; return its outcome once its
        events (the call, what the method wrote, the result) are committed."""


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

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        """``stub.method``: a coroutine function calling the object's public method (RPC).

        Names starting with an underscore are private (and Python's own protocols), so
        they are not looked up at all."""
        if name.startswith("_"):
            raise AttributeError(rpc.refusal(name))

        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self._call(name, args, kwargs)

        method.__name__ = method.__qualname__ = name
        return method

    async def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        reason = rpc.refusal(name)
        if reason is not None:
            raise TypeError(reason)
        limit = self._host.limits.max_message_bytes
        encoded_args, encoded_kwargs = rpc.encode_arguments(name, args, kwargs, limit)
        caller = core_module.current_core.get()
        waiting: tuple[str, ...] = ()
        caller_id = caller_label = None
        if caller is not None:
            caller_id = str(caller.object_id)
            caller_label = _label(caller.binding, caller.object_id)
            waiting = (*caller.call_waiting, caller_id)
            if str(self.id) in waiting:
                raise DurableObjectError(
                    f"Cannot call {name}() of {_label(self._binding, self.id)}: it is waiting "
                    "for this call to return, and an object runs one delivery at a time, so "
                    "the call would wait for itself. Call the method directly instead."
                )
        call = rpc.Call(
            uuid.uuid4().hex,
            name,
            encoded_args,
            encoded_kwargs,
            caller=caller_id,
            caller_label=caller_label,
            waiting=waiting,
        )
        outcome = await self._host.call(self._binding, self.id, call)
        return outcome.unwrap(name)

    def __repr__(self) -> str:
        return f"DurableObjectStub({self._binding}, {self.id!r})"


def _label(binding: str, object_id: DurableObjectId) -> str:
    """``BINDING/name``, or ``BINDING/<id>`` for an object without a name."""
    return f"{binding}/{object_id.name if object_id.name is not None else object_id}"


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
