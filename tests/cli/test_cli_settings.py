"""Settings: DURABLE_* variables and flags, DATABASE_URL's two names, clear errors."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from service import cli
from service.cli import options
from service.settings import Settings
from tests.cli.process import ECHO, child_env, durable, run


def _settings(*flags: str) -> Settings:
    """Settings as `durable serve APP FLAGS...` builds them."""
    args = cli.parser().parse_args(["serve", "app.py", *flags])
    return Settings(**options.flags(args))


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_PORT", "9001")
    monkeypatch.setenv("DURABLE_HIBERNATE_AFTER", "2.5")
    monkeypatch.setenv("DURABLE_AUTO_MIGRATE", "true")
    monkeypatch.setenv("DURABLE_LOG_LEVEL", "debug")
    settings = _settings()
    assert settings.port == 9001
    assert settings.hibernate_after == 2.5
    assert settings.auto_migrate is True
    assert settings.log_level == "DEBUG"


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_PORT", "9001")
    monkeypatch.setenv("DURABLE_NODE_ID", "from-env")
    monkeypatch.setenv("DURABLE_AUTO_MIGRATE", "true")
    settings = _settings("--port", "9002", "--node-id", "from-flag", "--no-auto-migrate")
    assert (settings.port, settings.node_id, settings.auto_migrate) == (9002, "from-flag", False)


def test_unset_flags_leave_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_NODE_ID", "from-env")
    assert _settings("--port", "9002").node_id == "from-env"


def test_database_url_under_both_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert _settings().database_url is None
    monkeypatch.setenv("DATABASE_URL", "postgresql://plain@db/app")
    assert _settings().database_url == "postgresql://plain@db/app"
    monkeypatch.setenv("DURABLE_DATABASE_URL", "postgresql://prefixed@db/app")
    assert _settings().database_url == "postgresql://prefixed@db/app"
    flag = _settings("--database-url", "postgresql://flag@db/app")
    assert flag.database_url == "postgresql://flag@db/app"


def test_every_setting_has_a_flag_and_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["serve", "--help"])
    serve_help = capsys.readouterr().out
    for name, field in Settings.model_fields.items():
        assert f"--{name.replace('_', '-')}" in serve_help
        assert f"DURABLE_{name.upper()}" in serve_help
        assert field.description, name


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        (
            {"DURABLE_MAX_MESSAGE_BYTES": str(33 << 20)},
            [],
            "--max-message-bytes / DURABLE_MAX_MESSAGE_BYTES: "
            "Input should be less than or equal to 33554432",
        ),
        ({}, ["--port", "http"], "--port / DURABLE_PORT: Input should be a valid integer"),
        ({"DURABLE_HIBERNATE_AFTER": "0"}, [], "--hibernate-after / DURABLE_HIBERNATE_AFTER"),
        ({"DURABLE_LOG_LEVEL": "chatty"}, [], "--log-level / DURABLE_LOG_LEVEL"),
        (
            {"DATABASE_URL": "mysql://root:secret@db/app"},
            [],
            "--database-url / DURABLE_DATABASE_URL or DATABASE_URL: "
            "Value error, must be a postgresql:// URL (got 'mysql://root@db/app')",
        ),
    ],
)
def test_invalid_settings_are_refused_clearly(
    env: dict[str, str], flags: list[str], expected: str
) -> None:
    result = run("serve", ECHO, *flags, env=child_env(env), timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: invalid settings:"), result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr


async def test_a_served_node_takes_flags_over_environment(database_url: str) -> None:
    env = child_env({"DURABLE_PORT": "1", "DURABLE_NODE_ID": "env-node"}, database_url=database_url)
    async with durable("serve", ECHO, "--port", "0", env=env) as node:
        url = await node.serving()
        assert "as node env-node" in node.output
        assert not url.endswith(":1")  # the flag's port 0 (any free port) won
        async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
            assert response.status == 200
        assert await node.stop() == 0


async def test_a_port_in_use_is_refused_clearly(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = child_env(database_url=database_url)
        async with durable("serve", ECHO, "--port", str(port), env=env) as node:
            assert await node.exited(timeout=60) == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: " in node.output
    assert "Traceback" not in node.output
