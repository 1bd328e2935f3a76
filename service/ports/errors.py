"""The one family of event-log errors, beside the interface that raises them.

Code that talks to the log catches ``StoreError`` (or one of its kinds); the runtime turns
them into the user-facing ``StorageUnavailableError`` in one place
(``service.runtime.storage_errors``). The store's internal causes of an outage are kinds of
``StoreUnavailableError`` too, and also ``ConnectionError``s, so that its retry loops take
them for the transient failures they are.
"""

from __future__ import annotations


class StoreError(Exception):
    """Something the event log could not do."""


class StoreUnavailableError(StoreError):
    """The database could not be reached or did not commit in time."""


class CommitRefusedError(StoreUnavailableError):
    """The database refused the data of a commit (not an outage): retrying it as it is would
    fail again, so the work it covers is given up after a few attempts."""


class DatabaseUnreachableError(StoreUnavailableError, ConnectionError):
    """No connection could be had: the server is down, refusing, or not accepting this
    database."""


class PoolExhaustedError(StoreUnavailableError, ConnectionError):
    """Every connection of a pool stayed busy for the whole wait: the node is overloaded (or
    its queries are blocked), the database itself may be fine."""


class CommitInDoubtError(StoreUnavailableError, ConnectionError):
    """The transaction of an interrupted COMMIT has not finished yet: ask again later."""


class ConflictError(StoreError):
    """An append found another seq or owner than it expected: the writer is stale."""


class NodeIdInUseError(StoreError):
    """Another live node holds this node's id: two nodes of one id would close each other's
    sockets in the log."""


class OwnedElsewhereError(StoreError):
    """Another live node owns the object (holds its lease): work for it is routed there,
    through the inbox; claiming it would take it from a node that is running it."""

    def __init__(self, object_id: str, owner: str) -> None:
        super().__init__(f"object {object_id} is owned by the live node {owner!r}")
        self.object_id = object_id
        self.owner = owner
