"""Exceptions raised to user code, named after their JavaScript counterparts.

SPEC: TypeError stays TypeError, RangeError becomes ValueError, a plain ``Error`` becomes
``DurableObjectError``; the message text matches the reference so searches find its docs.
"""

from __future__ import annotations


class DurableObjectError(Exception):
    """The JavaScript ``Error`` of the reference API."""


class InvalidAccessError(DurableObjectError):
    """The DOMException ``InvalidAccessError`` (bad close codes)."""


class ObjectResetError(DurableObjectError):
    """The object was reset (abort, a failed commit, a timeout); its pending work is gone."""


class StorageUnavailableError(DurableObjectError):
    """The event log could not commit; nothing of the failed work became visible."""


class OwnerTimeoutError(DurableObjectError):
    """The object runs on another node, which did not reply to a request or call routed to it
    within the route timeout. It may still run there (or, if that node failed, on the node
    that takes the object over): it is not safe to send again unless it is idempotent."""


class NoHostError(DurableObjectError):
    """No live node runs objects: the node the request reached only holds sockets (a
    gateway), so the object cannot run until a host starts. Nothing ran; try again."""
