"""The README's quick-start commands, as written, for CI to run: `quickstart.py serve|test`.

The "## Quick start" section must hold exactly two ```sh blocks of one command each: the
first serves the chat example, the second runs the tests. Anything else is an error, so a
README that no longer says how to start is a failing CI run, not a skipped check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Quick start"

#: What each command must do, in the order the README gives them.
ROLES = {"serve": "durable serve", "test": "pytest"}


class QuickStartError(Exception):
    """The README's quick start is not the two commands CI expects."""


def commands(readme: str) -> dict[str, str]:
    """The quick start's commands by role, exactly as the README writes them."""
    lines = readme.splitlines()
    if SECTION not in lines:
        raise QuickStartError(f'no "{SECTION}" section')
    start = lines.index(SECTION) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = "\n".join(lines[start:end]) + "\n"
    blocks = [block.strip() for block in re.findall(r"^```sh\n(.*?)^```$", section, re.M | re.S)]
    if len(blocks) != len(ROLES):
        raise QuickStartError(
            f'"{SECTION}" holds {len(blocks)} ```sh blocks; it must hold exactly {len(ROLES)}: '
            "the command that serves the chat example, then the one that runs the tests"
        )
    found: dict[str, str] = {}
    for (role, marker), block in zip(ROLES.items(), blocks, strict=True):
        if not block or "\n" in block.replace("\\\n", ""):
            raise QuickStartError(f"the {role} block must hold exactly one command:\n{block}")
        if marker not in block:
            raise QuickStartError(f"the {role} command does not run `{marker}`:\n{block}")
        found[role] = block
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description="Print one of the README's quick-start commands.")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args()
    try:
        print(commands(args.readme.read_text(encoding="utf-8"))[args.role])
    except QuickStartError as error:
        print(f"error: {args.readme.name}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
