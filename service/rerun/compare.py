"""Comparing what the rerun recorded with what the log did: what the code decided, not
the incidental values that differ on every run.

Two values are normalised, and nothing else:

- **random ids**: a token of 32 hex digits (a socket id, ``uuid4().hex``), a UUID, or a
  64-hex object id the rerun made with ``new_unique_id``, compares equal to the token at
  the same place in the log if the two have not been paired with others before: the first
  match pairs them for the rest of the run (a one-to-one renaming, checked everywhere,
  inside strings and keys too). The rerun gives new sockets the ids the log recorded for
  them, so sockets usually need no renaming at all.
- **clock readings**: a number that reads as a time within a year of its turn (epoch
  seconds, milliseconds, microseconds or nanoseconds), or an ISO 8601 date-time, compares
  as its offset from the time its turn ran (the log: when the turn's inbound event was
  committed; the rerun: when it started the turn), within ``TIME_TOLERANCE`` seconds (plus
  the alarm retry's jitter, for the retry a failed alarm schedules).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.events.types import Event, to_data

#: Seconds two clock readings' offsets from their turns may differ by.
TIME_TOLERANCE = 1.0

#: How far from its turn a number may lie and still be taken for a clock reading.
_TIME_WINDOW = 366 * 24 * 3600.0

#: Seconds per unit of a clock reading: seconds, milliseconds, microseconds, nanoseconds.
_UNITS = (1.0, 1e-3, 1e-6, 1e-9)

#: Random-looking ids (pairable whenever they differ), and object ids (pairable only when
#: the rerun made them at random: one made from a name must be the same name's).
_ID = re.compile(
    r"(?<![0-9a-f])("
    r"[0-9a-f]{64}|[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r")(?![0-9a-f])"
)
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")

_ENVELOPE = {"type", "version"}

#: A difference: the keys and indexes leading to it (innermost first), and what differs.
_Found = tuple[list[str | int], str]


@dataclass(frozen=True, slots=True)
class Clocks:
    """When a turn ran, in epoch seconds, in the log and in the rerun; and the slack."""

    recorded: float
    rerun: float
    tolerance: float = TIME_TOLERANCE


class Matcher:
    """Compares events of the log with the rerun's, pairing random ids as it goes."""

    def __init__(self, fresh: set[str]) -> None:
        #: Ids the rerun made at random (its socket ids and unique object ids): live set.
        self._fresh = fresh
        #: Paired ids: log -> rerun, and rerun -> log.
        self._to_rerun: dict[str, str] = {}
        self._to_log: dict[str, str] = {}

    def rerun_id(self, recorded_id: str) -> str:
        """The rerun's id for an id the log holds (the same unless they were paired)."""
        return self._to_rerun.get(recorded_id, recorded_id)

    def as_recorded(self, text: str) -> str:
        """``text`` with the rerun's paired ids put back as the log's, for showing."""
        if not self._to_log:
            return text
        return _ID.sub(lambda m: self._to_log.get(m.group(1), m.group(1)), text)

    def copy(self) -> Matcher:
        twin = Matcher(self._fresh)
        twin._to_rerun, twin._to_log = dict(self._to_rerun), dict(self._to_log)
        return twin

    def difference(self, recorded: Event, rerun: Event, clocks: Clocks) -> str | None:
        """None when the two events agree on what the code decided; else where they first
        differ, in words."""
        # Equal as JSON too: True == 1 == 1.0 in Python, not in storage.
        if recorded == rerun and to_data(recorded) == to_data(rerun):
            return None
        if recorded.type != rerun.type:
            return f"the log has {recorded.type}, the rerun {rerun.type}"
        left = recorded.model_dump(mode="json", exclude=_ENVELOPE)
        right = rerun.model_dump(mode="json", exclude=_ENVELOPE)
        found = self._value(left, right, clocks)
        if found is None:
            return None
        # The path is built on the way out, and only for the one difference reported.
        steps, what = found
        path: str = recorded.type
        for step in reversed(steps):
            path = f"{path}[{step}]" if isinstance(step, int) else _step(path, step)
        return f"{path}: {what}"

    # -- values -------------------------------------------------------------------------

    def _value(self, left: Any, right: Any, clocks: Clocks) -> _Found | None:
        """None if the values agree; else the path to the first difference (innermost step
        first) and what differs there."""
        if isinstance(left, dict):
            if isinstance(right, dict):
                return self._dict(left, right, clocks)
        elif isinstance(left, list):
            if isinstance(right, list):
                if len(left) != len(right):
                    return [], f"the log has {len(left)} items, the rerun {len(right)}"
                for index, (a, b) in enumerate(zip(left, right, strict=True)):
                    found = self._value(a, b, clocks)
                    if found is not None:
                        found[0].append(index)
                        return found
                return None
        elif left == right and type(left) is type(right):
            return None
        elif isinstance(left, str) and isinstance(right, str):
            if self._same_text(left, right, clocks):
                return None
        elif (
            _number(left)
            and _number(right)
            and (left == right or _same_time(float(left), float(right), clocks))
        ):
            return None
        return [], f"the log has {_short(left)}, the rerun {_short(right)}"

    def _dict(self, left: dict[str, Any], right: dict[str, Any], clocks: Clocks) -> _Found | None:
        if left.keys() == right.keys():
            pairs: Any = ((key, value, right[key]) for key, value in left.items())
        else:
            # Keys may hold ids too (a storage key per socket): the rerun's are renamed
            # first, and those left over are paired in order.
            renamed = {self.as_recorded(key): key for key in right}
            only_left = [key for key in left if key not in renamed]
            only_right = [key for key in renamed if key not in left]
            if len(only_left) != len(only_right):
                extra = only_left or only_right
                side = "log" if only_left else "rerun"
                return [], f"only the {side} has the key {_short(extra[0])}"
            for a, b in zip(sorted(only_left), sorted(only_right), strict=True):
                if not self._same_text(a, renamed[b], clocks):
                    return [], f"the log has the key {_short(a)}, the rerun {_short(b)}"
                renamed[a] = renamed.pop(b)
            pairs = ((key, value, right[renamed[key]]) for key, value in left.items())
        for key, value, other in pairs:
            found = self._value(value, other, clocks)
            if found is not None:
                found[0].append(key)
                return found
        return None

    def _same_text(self, left: str, right: str, clocks: Clocks) -> bool:
        if left == right:
            return True
        # split() with a group alternates text and ids: the text at even places.
        left_parts, right_parts = _ID.split(left), _ID.split(right)
        if len(left_parts) == len(right_parts) > 1 and all(
            a == b for a, b in zip(left_parts[::2], right_parts[::2], strict=True)
        ):
            pairs = list(zip(left_parts[1::2], right_parts[1::2], strict=True))
            if all(self._pairable(a, b) for a, b in pairs):
                for a, b in pairs:
                    self._to_rerun[a], self._to_log[b] = b, a
                return True
        if _ISO_TIME.match(left) and _ISO_TIME.match(right):
            a, b = _instant(left), _instant(right)
            return a is not None and b is not None and _same_time(a, b, clocks, units=(1.0,))
        return False

    def _pairable(self, recorded: str, rerun: str) -> bool:
        """Whether the log's id and the rerun's may stand for each other."""
        if self._to_rerun.get(recorded) == rerun:
            return True
        if recorded == rerun:
            return recorded not in self._to_rerun and rerun not in self._to_log
        if recorded in self._to_rerun or rerun in self._to_log:
            return False
        # An object id made from a name is the same on every run; only a random one pairs.
        return len(rerun) != 64 or rerun in self._fresh


def _step(path: str, key: str) -> str:
    """``path`` one key further: ``.key`` when it reads as a name, else ``["key"]``."""
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_time(
    left: float, right: float, clocks: Clocks, units: tuple[float, ...] = _UNITS
) -> bool:
    """Whether two numbers are clock readings at the same offset from their turns."""
    for unit in units:
        offset_left = left * unit - clocks.recorded
        offset_right = right * unit - clocks.rerun
        if abs(offset_left) < _TIME_WINDOW and abs(offset_right) < _TIME_WINDOW:
            return abs(offset_left - offset_right) <= clocks.tolerance
    return False


def _instant(text: str) -> float | None:
    """An ISO 8601 date-time as epoch seconds (a naive one in local time), or None."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _short(value: Any, limit: int = 80) -> str:
    """A value (of an event's JSON) as it reads in a message, cut to ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
