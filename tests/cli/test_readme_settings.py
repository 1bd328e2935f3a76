"""The README's settings table says what the Settings model and `durable serve --help` say.

The table is read from the README and the settings from the model at test time, so a new
setting needs its row (and a row its setting) without this file knowing either.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from service import cli
from service.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| flag | environment variable | default | meaning |"
#: The default of a setting that has none.
UNSET = "unset"


def _rows() -> list[dict[str, str]]:
    """The table under "## Configuration", one dict per row."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    assert HEADER in lines, f"no table headed {HEADER!r} under ## Configuration"
    start = lines.index(HEADER) + 2  # after the header and its --- line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        flags, env, default, meaning = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append({"flags": flags, "env": env, "default": default, "meaning": meaning})
    return rows


def _code(cell: str) -> list[str]:
    """The `code` spans of a cell."""
    return re.findall(r"`([^`]+)`", cell)


def _flags(name: str, field: FieldInfo) -> set[str]:
    flag = "--" + name.replace("_", "-")
    return {flag, "--no-" + flag[2:]} if field.annotation is bool else {flag}


def _env_names(name: str, field: FieldInfo) -> set[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return {choice for choice in alias.choices if isinstance(choice, str)}
    return {alias if isinstance(alias, str) else f"DURABLE_{name.upper()}"}


@pytest.fixture
def serve_help(capsys: pytest.CaptureFixture[str]) -> str:
    """`durable serve --help`, with its line breaks folded."""
    with pytest.raises(SystemExit) as exited:
        cli.run(["serve", "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _row_of(name: str, field: FieldInfo, rows: list[dict[str, str]]) -> dict[str, str]:
    mine = [row for row in rows if set(_code(row["flags"])) & _flags(name, field)]
    assert len(mine) == 1, f"{len(mine)} rows for the setting {name} (there must be one)"
    return mine[0]


def test_every_row_is_a_setting() -> None:
    every = set().union(*(_flags(n, f) for n, f in Settings.model_fields.items()))
    for row in _rows():
        flags = set(_code(row["flags"]))
        assert flags and flags <= every, f"row {row['flags']}: no such setting"


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_each_setting_has_one_row_that_agrees(name: str, serve_help: str) -> None:
    field = Settings.model_fields[name]
    row = _row_of(name, field, _rows())
    assert set(_code(row["flags"])) == _flags(name, field), row
    options = set(re.findall(r"--[a-z][a-z0-9-]*", serve_help))
    assert _flags(name, field) <= options, f"{name}: not an option of durable serve"
    assert set(_code(row["env"])) == _env_names(name, field), row
    for env in _env_names(name, field):
        assert env in serve_help, f"{env} is not in durable serve --help"
    assert row["meaning"], row

    default = field.get_default(call_default_factory=True, validated_data={})
    shown = _code(row["default"])
    if default is None:
        assert row["default"] == UNSET, row
    elif field.default_factory is not None and not shown:
        # Computed where the node starts (the host name, say): words say what it is.
        assert row["default"] and row["default"] != UNSET, row
    else:
        assert len(shown) == 1, f"the default of {name} as one `value`: {row['default']!r}"
        # Read the way the environment variable would be, so `10` is the default 10.0.
        parsed = Settings(**{name: shown[0]})
        assert getattr(parsed, name) == default, f"{name}: README {shown[0]}, model {default!r}"
