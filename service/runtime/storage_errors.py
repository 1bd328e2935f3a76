"""The one place where the event log's errors become the error user code and clients see."""

from __future__ import annotations

from service.api.errors import ObjectResetError, StorageUnavailableError
from service.ports.errors import ConflictError, StoreUnavailableError


def for_user(error: BaseException) -> Exception:
    """What a caller waiting on the log is told when ``error`` came out of it.

    Errors that are already the user's (a reset, an unavailable storage) pass through; the
    log's own become ``StorageUnavailableError``, with the log's text.
    """
    if isinstance(error, ObjectResetError | StorageUnavailableError):
        return error
    if isinstance(error, StoreUnavailableError | ConflictError):
        return StorageUnavailableError(f"The object's event log could not commit: {error}")
    return StorageUnavailableError(f"The commit failed: {error!r}")


def unavailable(reason: str) -> StorageUnavailableError:
    """The database is taken to be away (it refused connections) and did not answer a probe."""
    return StorageUnavailableError(f"the database is unavailable: {reason}")
