"""The README's History section shows every history command, as the parser takes it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from service import cli

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = {"objects", "events", "logs", "state", "presence", "diff", "tail", "psql"}


def _history_lines() -> list[str]:
    text = README.read_text()
    section = text.split("\n## History\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [line for line in block.splitlines() if line.strip()]


def test_every_history_command_is_shown_and_parses_as_written() -> None:
    lines = _history_lines()
    shown = {shlex.split(line, comments=True)[1] for line in lines}
    assert shown == COMMANDS
    parser = cli.parser()
    for line in lines:
        words = shlex.split(line, comments=True)
        assert words[0] == "durable"
        args, extra = parser.parse_known_args(words[1:])
        # Only psql takes arguments of its own (they go to psql).
        assert not extra or args.command == "psql", line
        assert args.command in COMMANDS
    assert {c.__name__.rsplit(".", 1)[1] for c in cli.COMMANDS} >= COMMANDS
