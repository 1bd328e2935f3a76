"""Bookmarks: names of an object's states, for point-in-time recovery.

A bookmark names the state after one event of the object's own log: its ``seq``, in
decimal, zero-padded to a fixed width, so that comparing two bookmarks of one object as
strings orders them by time. Why the seq and not the log's global ``position``: a
bookmark must exist before the events it covers are durable (``get_current_bookmark``
includes the current turn's writes), and ``position`` is assigned only when the flush
writes them; nor does position order within a flush say anything an object's seq does not.
The seq is known the moment an event is recorded, it is gapless, and it only grows,
restores included (a restore is new events, never a rewrite).
"""

from __future__ import annotations

import re

#: Digits of a bookmark: enough for any seq the ``events`` table can hold (a bigint).
WIDTH = 20

_BOOKMARK = re.compile(rf"[0-9]{{{WIDTH}}}")


def of_seq(seq: int) -> str:
    """The bookmark of the state after event ``seq`` (0: the empty state before any)."""
    if seq < 0:
        raise ValueError(f"no state comes before seq 0, so none has the bookmark of {seq}")
    return f"{seq:0{WIDTH}d}"


def to_seq(bookmark: object) -> int:
    """The seq a bookmark names; TypeError if it is not a string, ValueError if malformed."""
    if not isinstance(bookmark, str):
        raise TypeError(f"A bookmark is a string, not {type(bookmark).__name__}.")
    if not _BOOKMARK.fullmatch(bookmark):
        shown = bookmark if len(bookmark) <= 60 else bookmark[:57] + "..."
        raise ValueError(
            f"Invalid bookmark {shown!r}: a bookmark is {WIDTH} decimal digits, as "
            "get_current_bookmark() and get_bookmark_for_time() return them."
        )
    return int(bookmark)
