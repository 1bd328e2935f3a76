"""CI's reading of the README's quick start: two commands, as written, or a clear error."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / ".ci" / "quickstart.py"


@pytest.fixture(scope="module")
def quickstart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quickstart", HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme(*blocks: str, heading: str = "## Quick start") -> str:
    body = "\n\nSome words.\n\n".join(f"```sh\n{block}\n```" for block in blocks)
    return f"# title\n\n{heading}\n\nIntro.\n\n{body}\n\n## Next\n\n```sh\nnot this\n```\n"


SERVE = "pip install -e . && durable serve examples/chat"
TEST = "pip install -e '.[test]' && pytest"


def test_the_readme_gives_the_two_commands(quickstart: ModuleType) -> None:
    found = quickstart.commands((ROOT / "README.md").read_text())
    assert found["serve"].endswith("durable serve examples/chat")
    assert found["test"].endswith("pytest")


def test_the_commands_are_taken_as_written(quickstart: ModuleType) -> None:
    continued = "pip install -e . \\\n  && durable serve examples/chat"
    assert quickstart.commands(_readme(continued, TEST)) == {"serve": continued, "test": TEST}


@pytest.mark.parametrize(
    ("readme", "message"),
    [
        (_readme(SERVE, TEST, heading="## Getting started"), 'no "## Quick start" section'),
        (_readme(SERVE), "holds 1 ```sh blocks; it must hold exactly 2"),
        (_readme(SERVE, TEST, "echo more"), "holds 3 ```sh blocks"),
        (_readme(f"{SERVE}\necho twice", TEST), "the serve block must hold exactly one command"),
        (_readme(TEST, SERVE), "the serve command does not run `durable serve`"),
    ],
    ids=["no-section", "one-block", "three-blocks", "two-lines", "swapped"],
)
def test_anything_else_is_an_error(quickstart: ModuleType, readme: str, message: str) -> None:
    with pytest.raises(quickstart.QuickStartError, match=re.escape(message)):
        quickstart.commands(readme)


def test_the_script_fails_with_the_reason(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(_readme(SERVE))
    done = subprocess.run(
        [sys.executable, str(HELPER), "serve", "--readme", str(readme)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: README.md: ")
