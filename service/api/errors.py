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


class ObjectElsewhereError(DurableObjectError):
    """The object is running on another node, which this node does not forward requests to
    yet: the request was not delivered, and may be sent again."""
