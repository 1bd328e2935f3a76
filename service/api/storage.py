"""Object storage: one sorted keyspace, read from memory, every write an event.

``ctx.storage`` is the async API, ``ctx.storage.kv`` the synchronous one; both share the
keyspace. Values are JSON-compatible or bytes and are copied at call time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from service.api.core import ObjectCore
from service.api.errors import DurableObjectError
from service.api.text import check_text
from service.events import bookmarks, types, values

T = TypeVar("T")


class Done(Generic[T]):
    """An awaitable that is already settled.

    Storage calls act when they are called (as JavaScript promises start at once): a write
    made without ``await`` still happens, in order, and bad arguments raise at the call.
    Awaiting gives the result; there is nothing to wait for, reads come from memory.
    """

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # unreachable: makes this a generator, as __await__ must be


_UNDEFINED: Any = object()


class _Keyspace:
    """Validation and the read/write primitives shared by every storage facade."""

    def __init__(self, core: ObjectCore) -> None:
        self._core = core

    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"Storage keys must be strings, not {type(key).__name__}.")
        size = len(check_text(key, "Storage keys"))
        limit = self._core.limits.max_key_bytes
        if size > limit:
            raise ValueError(
                f"Keys cannot be larger than {limit} bytes. A key of size {size} was provided."
            )
        return key

    def _check_count(self, count: int) -> None:
        limit = self._core.limits.max_keys_per_call
        if count > limit:
            raise ValueError(
                f"Maximum number of key value pairs is {limit}. {count} pairs were provided."
            )

    def _encode_value(self, value: Any) -> Any:
        if value is _UNDEFINED:
            raise TypeError("put() called with undefined value.")
        encoded = values.encode(value)
        size = values.size_of(encoded)
        limit = self._core.limits.max_value_bytes
        if size > limit:
            raise ValueError(
                f"Values cannot be larger than {limit} bytes. A value of size {size} was provided."
            )
        return encoded

    def _get_one(self, key: Any) -> Any:
        encoded = self._core.state.storage.get(self._check_key(key), _UNDEFINED)
        return None if encoded is _UNDEFINED else values.decode(encoded)

    def _get_many(self, keys: Iterable[Any]) -> dict[str, Any]:
        keys = [self._check_key(k) for k in keys]
        self._check_count(len(keys))
        storage = self._core.state.storage
        return {k: values.decode(storage[k]) for k in sorted(set(keys)) if k in storage}

    def _put(self, key_or_entries: Any, value: Any) -> None:
        if isinstance(key_or_entries, dict):
            if value is not _UNDEFINED:
                raise TypeError(
                    "put() may only be called with a single key-value pair and optional options "
                    "as put(key, value, options) or with multiple key-value pairs and optional "
                    "options as put(entries, options)"
                )
            self._check_count(len(key_or_entries))
            entries = {self._check_key(k): self._encode_value(v) for k, v in key_or_entries.items()}
        else:
            entries = {self._check_key(key_or_entries): self._encode_value(value)}
        if entries:
            self._core.record(types.StoragePut(entries=entries))

    def _delete(self, keys: list[Any]) -> int:
        checked = [self._check_key(k) for k in keys]
        self._check_count(len(checked))
        storage = self._core.state.storage
        present = [k for k in dict.fromkeys(checked) if k in storage]
        if present:
            self._core.record(types.StorageDeleted(keys=present))
        return len(present)

    def _list(
        self,
        start: str | None,
        start_after: str | None,
        end: str | None,
        prefix: str | None,
        reverse: bool,
        limit: int | None,
    ) -> Iterator[tuple[str, Any]]:
        if start is not None and start_after is not None:
            raise TypeError("list() cannot be called with both start and startAfter values.")
        if limit is not None and limit <= 0:
            raise TypeError("List limit must be positive.")
        low, low_inclusive = (start, True) if start_after is None else (start_after, False)
        high = end
        if prefix:
            if low is None or prefix > low:
                low, low_inclusive = prefix, True
            prefix_end = _prefix_end(prefix)
            if prefix_end is not None and (high is None or prefix_end < high):
                high = prefix_end
        storage = self._core.state.storage
        if low is not None and high is not None and high <= low:
            return iter(())
        keys = storage.irange(
            minimum=low, maximum=high, inclusive=(low_inclusive, False), reverse=reverse
        )
        if prefix:
            keys = (k for k in keys if k.startswith(prefix))
        pairs = ((k, values.decode(storage[k])) for k in keys)
        return itertools.islice(pairs, limit) if limit is not None else pairs


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    for index in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[index])
        if code < 0x10FFFF:
            return prefix[:index] + chr(code + 1)
    return None


class SyncKV(_Keyspace):
    """``ctx.storage.kv``: synchronous get/put/delete/list over the same keyspace."""

    def get(self, key: str) -> Any:
        return self._get_one(key)

    def put(self, key: str, value: Any = _UNDEFINED) -> None:
        self._put(key, value)

    def delete(self, key: str) -> bool:
        return self._delete([key]) == 1

    def list(
        self,
        *,
        start: str | None = None,
        start_after: str | None = None,
        end: str | None = None,
        prefix: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """An iterator of ``(key, value)`` pairs in key order."""
        return self._list(start, start_after, end, prefix, reverse, limit)


class Storage(_Keyspace):
    """``ctx.storage``: the awaitable API, plus alarms, transactions and ``sync``."""

    def __init__(self, core: ObjectCore) -> None:
        super().__init__(core)
        self.kv = SyncKV(core)

    def get(self, key: str | Iterable[str], **_options: Any) -> Done[Any]:
        """A value (or None), or for a list of keys a dict of those that exist, in key order."""
        if isinstance(key, str):
            return Done(self._get_one(key))
        return Done(self._get_many(key))

    def put(
        self, key: str | dict[str, Any], value: Any = _UNDEFINED, **_options: Any
    ) -> Done[None]:
        self._put(key, value)
        return Done(None)

    def delete(self, key: str | Iterable[str], **_options: Any) -> Done[bool | int]:
        """For one key, whether it existed; for a list, how many of them did."""
        if isinstance(key, str):
            return Done(self._delete([key]) == 1)
        return Done(self._delete(list(key)))

    def list(
        self,
        *,
        start: str | None = None,
        start_after: str | None = None,
        end: str | None = None,
        prefix: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
        **_options: Any,
    ) -> Done[dict[str, Any]]:
        return Done(dict(self._list(start, start_after, end, prefix, reverse, limit)))

    def delete_all(self, **_options: Any) -> Done[None]:
        """Delete every key, and the alarm."""
        state = self._core.state
        if state.storage or state.alarm_ms is not None:
            self._core.record(types.StorageCleared())
        return Done(None)

    async def transaction(self, closure: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``closure(txn)``; its writes are kept only if it returns without rolling back."""
        mark = self._core.savepoint()
        txn = Transaction(self._core)
        try:
            result = await closure(txn)
        except BaseException:
            self._core.rollback_to(mark)
            raise
        # A transaction's end is its storage's business: the two are one unit, in one module.
        if txn._rolled_back:  # noqa: SLF001
            self._core.rollback_to(mark)
        txn._done = True  # noqa: SLF001
        return result

    async def sync(self) -> None:
        """Resolve once every write made so far is durable."""
        await self._core.sync()

    def get_alarm(self, **_options: Any) -> Done[int | None]:
        """The scheduled alarm in epoch milliseconds, or None."""
        return Done(self._core.state.alarm_ms)

    def set_alarm(self, scheduled_time: datetime | float, **_options: Any) -> Done[None]:
        """Schedule the object's one alarm (replacing any other)."""
        if isinstance(scheduled_time, datetime):
            ms = int(scheduled_time.timestamp() * 1000)
        elif isinstance(scheduled_time, int | float) and not isinstance(scheduled_time, bool):
            ms = int(scheduled_time)
        else:
            raise TypeError("setAlarm() takes a datetime or epoch milliseconds.")
        if ms <= 0:
            raise TypeError("setAlarm() cannot be called with an alarm time <= 0")
        if not self._core.has_alarm_handler and not self._core.in_constructor:
            raise TypeError(
                "Your Durable Object class must have an alarm() handler in order to call setAlarm()"
            )
        self._core.record(types.AlarmSet(scheduled_ms=ms))
        return Done(None)

    def delete_alarm(self, **_options: Any) -> Done[None]:
        if self._core.state.alarm_ms is not None:
            self._core.record(types.AlarmDeleted())
        return Done(None)

    # -- point-in-time recovery (``service.events.bookmarks``) ---------------------------

    async def get_current_bookmark(self) -> str:
        """The bookmark of the state now, writes of this turn not yet durable included."""
        return bookmarks.of_seq(self._core.state.seq)

    async def get_bookmark_for_time(self, time: datetime | float) -> str:
        """The bookmark of the state as it was at ``time`` (a datetime or epoch ms): after
        the last event recorded then. A time before the object's first event gives the
        bookmark of the empty state."""
        if isinstance(time, datetime):
            ms = time.timestamp() * 1000
        elif isinstance(time, int | float) and not isinstance(time, bool):
            ms = float(time)
        else:
            raise TypeError("getBookmarkForTime() takes a datetime or epoch milliseconds.")
        if math.isnan(ms):
            raise ValueError("getBookmarkForTime() needs a time, not NaN.")
        if ms > datetime.now(UTC).timestamp() * 1000:
            raise ValueError(
                f"getBookmarkForTime() cannot name the state at {ms:.0f} ms: that time is "
                "in the future."
            )
        if ms < 0:
            return bookmarks.of_seq(0)  # before 1970, and so before any event
        at = datetime.fromtimestamp(ms / 1000, UTC)
        return bookmarks.of_seq(await self._core.seq_at_time(at))

    async def on_next_session_restore_bookmark(self, bookmark: str) -> str:
        """Restore storage to ``bookmark`` when the object next starts; call ``ctx.abort()``
        then to start it now.

        The request is durable when this returns, with every write made before it in this
        turn (a later rollback or exception does not take them back). Returns the bookmark
        of the state just before the restore, which undoes it.
        """
        seq = bookmarks.to_seq(bookmark)
        current = self._core.state.seq
        if seq > current:
            raise ValueError(
                f"Bookmark {bookmark} is from the future: this object's newest state is "
                f"{bookmarks.of_seq(current)}."
            )
        undo = bookmarks.of_seq(current)
        self._core.record(types.RestoreRequested(bookmark=bookmark, undo_bookmark=undo))
        await self._core.commit_so_far()
        return undo


class Transaction(Storage):
    """The ``txn`` of ``storage.transaction``: the storage API plus ``rollback``."""

    def __init__(self, core: ObjectCore) -> None:
        super().__init__(core)
        self._rolled_back = False
        self._done = False

    def rollback(self) -> None:
        """Discard every write of this transaction when the closure returns."""
        self._check("rollback")
        self._rolled_back = True

    def _check(self, operation: str) -> None:
        if self._rolled_back:
            raise DurableObjectError(f"Cannot {operation} on rolled back transaction")

    def get(self, key: str | Iterable[str], **options: Any) -> Done[Any]:
        self._check("get")
        return super().get(key, **options)

    def put(self, key: str | dict[str, Any], value: Any = _UNDEFINED, **options: Any) -> Done[None]:
        self._check("put")
        return super().put(key, value, **options)

    def delete(self, key: str | Iterable[str], **options: Any) -> Done[bool | int]:
        self._check("delete")
        return super().delete(key, **options)

    def list(self, **options: Any) -> Done[dict[str, Any]]:
        self._check("list")
        return super().list(**options)

    def delete_all(self, **_options: Any) -> Done[None]:
        raise DurableObjectError("Cannot call deleteAll() within a transaction")

    async def on_next_session_restore_bookmark(self, bookmark: str) -> str:
        # It commits what the turn wrote so far, which a transaction could then not undo.
        raise DurableObjectError("Cannot call onNextSessionRestoreBookmark() within a transaction")

    async def transaction(self, closure: Callable[[Transaction], Awaitable[T]]) -> T:
        self._check("transaction")
        return await super().transaction(closure)
