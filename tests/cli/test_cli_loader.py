"""`durable serve APP`: how the application is found, and what is said when it is not."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from service.api.application import Application
from service.loader import LoadError, load_application
from tests.cli.process import APPS, child_env, durable, run

#: The app is loaded before the database is touched, so these need no server.
_NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (str(APPS / "missing.py"), f"error: no such file or directory: {APPS / 'missing.py'}"),
        (str(APPS / "noapp_dir"), f"error: {APPS / 'noapp_dir'} is a directory without an app.py"),
        (
            str(APPS / "no_app.py"),
            f"error: {APPS / 'no_app.py'} defines no `app`; it has chat: "
            f"use {APPS / 'no_app.py'}:chat",
        ),
        (
            str(APPS / "not_app.py"),
            f"error: {APPS / 'not_app.py'}: `app` is dict, not a service.Application",
        ),
        (f"{APPS / 'echo.py'}:nothing", "defines no `nothing`"),
        ("no_such_package.app", "error: no module named 'no_such_package.app'"),
    ],
    ids=["missing-file", "directory-without-app", "no-app", "not-an-application", "attr", "module"],
)
def test_a_bad_target_is_refused_with_a_clear_message(target: str, expected: str) -> None:
    result = run("serve", target, env=child_env(database_url=_NO_DATABASE), timeout=30)
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_an_import_failure_shows_the_users_traceback() -> None:
    target = str(APPS / "raises.py")
    result = run("serve", target, env=child_env(database_url=_NO_DATABASE), timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: importing {Path(target)} failed:")
    assert 'raises.py", line 5' in result.stderr  # where, in the user's file
    assert "RuntimeError: the application could not configure itself" in result.stderr


def test_targets_by_file_directory_attribute_and_module(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(load_application(str(APPS / "echo.py")), Application)
    assert isinstance(load_application(f"{APPS / 'no_app.py'}:chat"), Application)
    monkeypatch.chdir(APPS.parents[2])
    assert isinstance(load_application("tests.cli.apps.echo"), Application)
    assert isinstance(load_application("tests.cli.apps.echo:app"), Application)
    with pytest.raises(LoadError, match=r"is a directory without an app\.py"):
        load_application("tests/cli/apps/noapp_dir")


async def test_a_directory_serves_its_app_py(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from service import Application\n"
        "from echo import Echo\n"  # a sibling of the app's file, as in the examples
        "app = Application({'ECHO': Echo})\n"
    )
    (tmp_path / "echo.py").write_text((APPS / "echo.py").read_text())
    env = child_env(database_url=database_url)
    async with durable("serve", str(tmp_path), "--port", "0", env=env) as node:
        url = await node.serving()
        async with aiohttp.ClientSession() as session, session.get(f"{url}/echo/a") as response:
            assert (response.status, await response.text()) == (200, "1")
        assert await node.stop() == 0
