"""Checks for strings that end up as text in the event log.

PostgreSQL text and jsonb cannot hold NUL, and a lone surrogate has no UTF-8 form; such a
string would fail (or silently change) in the commit, so it is refused at the call.
"""

from __future__ import annotations


def check_text(text: str, what: str) -> bytes:
    """``text`` as UTF-8, or a TypeError naming ``what`` if the log cannot keep it."""
    if "\x00" in text:
        raise TypeError(f"{what} cannot contain the NUL character (U+0000).")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError(f"{what} must be valid Unicode text (it has a lone surrogate).") from None
