"""The admin API's parameters: each declared once (for the OpenAPI document and for the
check that no unknown one was given) and parsed with the history commands' own words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from multidict import MultiMapping

from service.history import points


class BadRequest(ValueError):
    """A parameter the API cannot take; the message says what to give instead (a 400)."""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an endpoint, as its OpenAPI document describes it."""

    name: str
    description: str
    #: Its JSON schema type.
    kind: Literal["string", "integer", "boolean"] = "string"
    where: Literal["query", "path", "header"] = "query"
    required: bool = False
    #: May be given more than once.
    repeated: bool = False


#: The object in a path: ``BINDING/NAME`` with its slash encoded (``CHAT%2Flobby``), or an id.
REF = Param(
    "ref",
    "the object: its 64-hex id, or BINDING/NAME with the slash encoded (CHAT%2Flobby)",
    where="path",
    required=True,
)


def unknown(query: Iterable[str], declared: Iterable[Param]) -> None:
    """BadRequest for a query parameter the endpoint does not take."""
    known = sorted(p.name for p in declared if p.where == "query")
    for name in query:
        if name not in known:
            takes = ", ".join(known) if known else "no parameters"
            raise BadRequest(f"unknown parameter {name!r}: this endpoint takes {takes}")


def text(query: MultiMapping[str], name: str) -> str | None:
    """A parameter given at most once (None: not given)."""
    given = query.getall(name, [])
    if len(given) > 1:
        raise BadRequest(f"{name} is given {len(given)} times: give it once")
    if given and given[0] == "":
        raise BadRequest(f"{name} is empty: give a value or leave it out")
    if given and "\x00" in given[0]:
        raise BadRequest(f"{name} holds a NUL character, which no text in the log holds")
    return given[0] if given else None


def search(query: MultiMapping[str], name: str, *, most: int) -> str | None:
    """A text to look for (``text``), of ``most`` characters at most."""
    given = text(query, name)
    if given is not None and len(given) > most:
        raise BadRequest(f"{name} has {len(given)} characters: give at most {most}")
    return given


def choice(query: MultiMapping[str], name: str, choices: tuple[str, ...], *, default: str) -> str:
    """One of ``choices`` (``default`` when not given)."""
    given = text(query, name)
    if given is None:
        return default
    if given not in choices:
        raise BadRequest(f"{name} must be {' or '.join(choices)}, not {given!r}")
    return given


def point(query: MultiMapping[str], name: str) -> int | datetime | None:
    """A seq or a time (``points.point``)."""
    given = text(query, name)
    if given is None:
        return None
    try:
        return points.point(given, name)
    except points.PointError as error:
        raise BadRequest(str(error)) from None


def time(query: MultiMapping[str], name: str) -> datetime | None:
    """A time with its zone, or ``now`` (``points.time``)."""
    given = text(query, name)
    if given is None:
        return None
    try:
        return points.time(given, name)
    except points.PointError as error:
        raise BadRequest(str(error)) from None


def count(query: MultiMapping[str], name: str, *, default: int, least: int, most: int) -> int:
    """A whole number from ``least`` to ``most``."""
    given = text(query, name)
    if given is None:
        return default
    return number(given, name, least=least, most=most)


def number(given: str, name: str, *, least: int, most: int | None = None) -> int:
    """``given`` as a whole number from ``least`` to ``most``."""
    try:
        value = int(given)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {given!r}") from None
    if value < least:
        raise BadRequest(f"{name} must be at least {least}, not {value}")
    if most is not None and value > most:
        raise BadRequest(f"{name} must be at most {most}, not {value}")
    return value


def flag(query: MultiMapping[str], name: str) -> bool | None:
    """true or false (None: not given)."""
    given = text(query, name)
    if given is None:
        return None
    if given.lower() in ("true", "1", "yes"):
        return True
    if given.lower() in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name} must be true or false, not {given!r}")


def names(query: MultiMapping[str], name: str) -> list[str] | None:
    """A list, given as repeated parameters or comma-separated (None: not given)."""
    given = query.getall(name, [])
    if any("\x00" in value for value in given):
        raise BadRequest(f"{name} holds a NUL character, which no text in the log holds")
    found = [part.strip() for value in given for part in value.split(",") if part.strip()]
    if given and not found:
        raise BadRequest(f"{name} is empty: give a value or leave it out")
    return found or None
