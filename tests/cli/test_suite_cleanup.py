"""A run of the test suite leaves nothing behind in the temporary directory."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.process import child_env

ROOT = Path(__file__).resolve().parents[2]

#: One test that uses the session's embedded server, a tmp_path and a `durable` process.
PROBE = "tests/cli/test_cli_loader.py::test_a_directory_serves_its_app_py"

pytestmark = pytest.mark.slow


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory under /tmp, which the embedded server's own system user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="durable-suite-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(300)
def test_a_run_on_the_embedded_server_leaves_no_data(scratch: Path) -> None:
    temp, runtime = scratch / "tmp", scratch / "runtime"
    temp.mkdir()
    runtime.mkdir(mode=0o700)
    # No DATABASE_URL: the suite starts its own server. The wheel's lock file goes to
    # XDG_RUNTIME_DIR, kept apart here so that the temporary directory holds only ours.
    env = child_env({"TMPDIR": str(temp), "XDG_RUNTIME_DIR": str(runtime)})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    left = sorted(str(path.relative_to(temp)) for path in temp.rglob("*"))
    # pytest's own root for the session directories it made (and removed) may stay, empty.
    assert left in ([], [f"pytest-of-{getpass.getuser()}"]), left
