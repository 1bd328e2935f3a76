"""Durable objects with WebSocket hibernation, event-sourced on PostgreSQL.

The public API, re-exported for user code: ``from service import DurableObject, ...``.
"""

from __future__ import annotations

from service.api.application import Application
from service.api.context import DurableObjectState
from service.api.durable_object import DurableObject
from service.api.errors import (
    DurableObjectError,
    InvalidAccessError,
    ObjectResetError,
    OwnerTimeoutError,
    StorageUnavailableError,
)
from service.api.http import Headers, Request, Response
from service.api.ids import DurableObjectId
from service.api.limits import Limits
from service.api.namespace import DurableObjectNamespace, DurableObjectStub, Env
from service.api.rpc import RemoteError
from service.api.websocket import (
    CloseEvent,
    ErrorEvent,
    MessageEvent,
    WebSocket,
    WebSocketPair,
    WebSocketRequestResponsePair,
)

__all__ = [
    "Application",
    "CloseEvent",
    "DurableObject",
    "DurableObjectError",
    "DurableObjectId",
    "DurableObjectNamespace",
    "DurableObjectState",
    "DurableObjectStub",
    "Env",
    "ErrorEvent",
    "Headers",
    "InvalidAccessError",
    "Limits",
    "MessageEvent",
    "ObjectResetError",
    "OwnerTimeoutError",
    "RemoteError",
    "Request",
    "Response",
    "StorageUnavailableError",
    "WebSocket",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
]
