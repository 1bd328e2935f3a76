"""`durable --version`: the version of the installed package, from its metadata."""

from __future__ import annotations

import importlib.metadata

from tests.cli.process import child_env, run


def test_version_is_the_installed_one() -> None:
    result = run("--version", env=child_env(), timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"durable {importlib.metadata.version('durable-objects')}\n"
    assert result.stderr == ""
