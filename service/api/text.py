"""Checks for strings that end up as text in the event log.

PostgreSQL text and jsonb cannot hold NUL, and a lone surrogate has no UTF-8 form; such a
string would fail (or silently change) in the commit, so it is refused at the call, or,
where the text is not the user's to fix (a log line, a request made by code), replaced.
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


def storable(text: str) -> str:
    """``text`` as PostgreSQL's text and jsonb can hold it: a NUL or a lone surrogate (either
    would make the whole commit fail) replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
