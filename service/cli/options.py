"""Flags generated from ``Settings``: each also reads ``DURABLE_<NAME>`` from the environment.

A flag wins over the environment, and pydantic validates both the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from service.settings import Settings

#: Settings every command that opens the database takes; the rest are for ``serve`` only.
COMMON = ("database_url", "data_dir", "log_level")


def add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Add a flag for each of the named settings, with its description and default."""
    for name in names:
        field = Settings.model_fields[name]
        flag = "--" + name.replace("_", "-")
        help_text = (field.description or "").replace("%", "%%")
        if field.default is not PydanticUndefined and field.default is not None:
            help_text += f" (default {field.default})"
        help_text += f" [{env_name(name)}]"
        if field.annotation is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, metavar=name.upper(), help=help_text)


def env_name(name: str) -> str:
    """The environment variable(s) a setting reads, as the help text shows them."""
    return f"DURABLE_{name.upper()}" + (" or DATABASE_URL" if name == "database_url" else "")


def flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (left as text: the model parses them)."""
    return {
        name: value
        for name, value in vars(args).items()
        if name in Settings.model_fields and value is not None
    }


def explain(error: ValidationError) -> str:
    """Invalid settings, one line each, named as flag and environment variable."""
    lines = ["error: invalid settings:"]
    for problem in error.errors():
        location = str(problem["loc"][0]) if problem["loc"] else "?"
        name = location.lower().removeprefix("durable_")
        value = problem.get("input")
        if name == "database_url" and isinstance(value, str):
            from service.store.database_url import redact

            value = redact(value)
        shown = "(hidden)" if name == "admin_token" else repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        where = f"--{name.replace('_', '-')} / {env_name(name)}"
        lines.append(f"  {where}: {problem['msg']} (got {shown})")
    return "\n".join(lines)
