"""docker/: no engine runs here, so the files are checked for structure, never run (and
the balancer's config by HAProxy itself)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from service.cli import haproxy

ROOT = Path(__file__).parents[2]
DOCKER = ROOT / "docker"


def parse_yaml(text: str) -> Any:
    """Parse the plain YAML subset compose.yaml keeps to.

    Block mappings and sequences, flow sequences written as JSON, plain or quoted scalars,
    comments. Anything else (anchors, multi-line strings, flow mappings) is refused, which
    also keeps the file plain.
    """
    lines = []
    for raw in text.splitlines():
        stripped = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if stripped:
            if re.search(r"(^|\s)[&*!][\w<]|\|$|>$|^\s*<<:|\{", stripped):
                raise ValueError(f"not plain YAML: {raw!r}")
            lines.append((len(stripped) - len(stripped.lstrip()), stripped.strip()))
    value, rest = _block(lines, 0)
    assert not rest, rest
    return value


def _block(lines: list[tuple[int, str]], indent: int) -> tuple[Any, list[tuple[int, str]]]:
    if lines[0][1].startswith("- "):
        items = []
        while lines and lines[0][0] == indent and lines[0][1].startswith("- "):
            item = lines[0][1][2:]
            if ": " in item and not item.startswith(('"', "'", "[")):
                raise ValueError(f"not plain YAML (a mapping in a sequence): {item!r}")
            items.append(_scalar(item))
            lines = lines[1:]
        return items, lines
    mapping: dict[str, Any] = {}
    while lines and lines[0][0] == indent:
        key, _, value = lines[0][1].partition(":")
        lines = lines[1:]
        if value.strip():
            mapping[key] = _scalar(value.strip())
        elif lines and lines[0][0] > indent:
            mapping[key], lines = _block(lines, lines[0][0])
        elif lines and lines[0][0] == indent and lines[0][1].startswith("- "):
            mapping[key], lines = _block(lines, indent)
        else:
            mapping[key] = None
    return mapping, lines


def _scalar(text: str) -> Any:
    if text.startswith(("[", '"')):
        return json.loads(text)
    if text.startswith("'"):
        return text[1:-1]
    return int(text) if text.isdigit() else text


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = (DOCKER / "compose.yaml").read_text()
    parsed = parse_yaml(text)
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:  # where PyYAML is installed, the two readings agree
        assert parsed == yaml.safe_load(text)
    assert isinstance(parsed, dict)
    return parsed


def test_the_yaml_subset_parser() -> None:
    text = 'a:\n  b: 1\n  c: ["x", "y"]\n  d:\n    - e\n    - \'f\'\n# note\ng: "h"  # end\n'
    assert parse_yaml(text) == {"a": {"b": 1, "c": ["x", "y"], "d": ["e", "f"]}, "g": "h"}
    with pytest.raises(ValueError, match="not plain YAML"):
        parse_yaml("x: &anchor\n  y: 1\n")


GATEWAYS = ("gateway1", "gateway2")
HOSTS = ("host1", "host2")
NODES = (*GATEWAYS, *HOSTS)


def test_compose_chain_db_then_migrate_then_nodes_then_balancer(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", "migrate", *NODES, "balancer"}

    db = services["db"]
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])

    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"

    for name in NODES:
        node = services[name]
        assert node["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert node["command"] == ["serve", "examples/chat", "--host", "0.0.0.0"]
        assert node["environment"]["DURABLE_NODE_ID"] == name
        assert node["environment"]["DURABLE_ROLE"] == ("gateway" if name in GATEWAYS else "host")
        assert "http://127.0.0.1:8787/healthz" in " ".join(node["healthcheck"]["test"])
        # Time for a host to hand its rooms over, and a gateway its replies, on SIGTERM.
        assert node["stop_grace_period"] == "30s"
        assert "ports" not in node  # reached through the balancer only

    balancer = services["balancer"]
    assert balancer["image"].startswith("haproxy:")
    assert balancer["ports"] == ["8787:8787"]
    assert balancer["depends_on"] == {name: {"condition": "service_healthy"} for name in GATEWAYS}
    assert balancer["stop_signal"] == "SIGUSR1"  # a soft stop


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("restart") != "no":
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def _haproxy_cfg() -> str:
    return (DOCKER / "haproxy.cfg").read_text()


def test_the_balancer_runs_haproxy_cfg_over_the_gateways(compose: dict[str, Any]) -> None:
    (volume,) = compose["services"]["balancer"]["volumes"]
    source, target, mode = volume.split(":")
    assert (DOCKER / source).resolve() == DOCKER / "haproxy.cfg"
    assert target == "/usr/local/etc/haproxy/haproxy.cfg"  # where the image reads it
    assert mode == "ro"
    servers = re.findall(r"^\s*server (\S+) (\S+)", _haproxy_cfg(), re.M)
    assert servers == [(name, f"{name}:8787") for name in GATEWAYS]  # never a host (421)
    # Its health check asks the monitor frontend, which fails while no gateway is up.
    (url,) = [a for a in compose["services"]["balancer"]["healthcheck"]["test"] if "://" in a]
    port, path = urlsplit(url).port, urlsplit(url).path
    assert re.search(rf"^\s*bind :{port}\n\s*monitor-uri {path}\n", _haproxy_cfg(), re.M)


def test_haproxy_cfg_hashes_as_durable_cluster_does() -> None:
    assert haproxy.OBJECT_HASH in _haproxy_cfg()


def test_haproxy_cfg_is_valid_for_haproxy() -> None:
    binary = haproxy.find("haproxy")
    assert binary is not None, "HAProxy is not installed (CI installs it)"
    checked = subprocess.run(
        [binary, "-c", "-f", str(DOCKER / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout
    # Outside compose, the nodes' names do not resolve: the only warnings allowed.
    warnings = [line for line in checked.stderr.splitlines() if "[WARNING]" in line]
    assert all("could not resolve address 'gateway" in line for line in warnings), warnings


def test_every_database_url_points_at_the_db_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["db"]["environment"]
    for name in ("migrate", *NODES):
        url = urlsplit(services[name]["environment"]["DATABASE_URL"])
        assert url.scheme == "postgresql"
        assert (url.hostname, url.port) == ("db", 5432)
        assert (url.username, url.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
        assert url.path == "/" + env["POSTGRES_DB"]


def test_images_build_from_the_project(compose: dict[str, Any]) -> None:
    for name in ("migrate", *NODES):
        build = compose["services"][name]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).is_file()


def _instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_dockerfile_installs_the_project_and_runs_durable_as_a_user() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    for kind, argument in instructions:
        if kind == "COPY":
            *sources, _ = shlex.split(argument)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
    installs = [arg for kind, arg in instructions if kind == "RUN" and "pip install" in arg]
    assert installs
    for install in installs:  # a regular install, as a user's: the migrations ship inside it
        assert not {"-e", "--editable"} & set(shlex.split(install)), install
    users = [arg for kind, arg in instructions if kind == "USER"]
    assert users and users[-1] not in ("root", "0")
    last = {kind: arg for kind, arg in instructions}
    command = json.loads(last["ENTRYPOINT"]) + json.loads(last["CMD"])
    assert command == ["durable", "serve", "examples/chat", "--host", "0.0.0.0"]
    assert (ROOT / "examples" / "chat" / "app.py").is_file()


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".durable"} <= ignored
    assert not ignored & {"service", "migrations", "examples", "pyproject.toml", "README.md"}
