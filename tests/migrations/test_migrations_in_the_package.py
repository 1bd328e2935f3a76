"""The migration scripts ship inside the package, and the repository's alembic.ini still works.

`durable migrate` finds them through ``service.store.migrations`` (importlib.resources), never
by a path from the source tree, so an install from a wheel can migrate; CI builds that wheel
and migrates and serves from it outside the clone.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tomllib
import uuid
from importlib import resources, util
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from service.store import migrate
from tests.cli.process import child_env, scratch_database

ROOT = Path(__file__).parents[2]
UNUSED_URL = "postgresql://unused/none"


def _revisions(config: Config) -> dict[str, str]:
    """Each revision the scripts of ``config`` hold, to the name of its file."""
    scripts = ScriptDirectory.from_config(config)
    return {script.revision: Path(script.path).name for script in scripts.walk_revisions()}


def _setuptools() -> dict[str, object]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert isinstance(table, dict)
    return table


def test_migrate_finds_the_scripts_through_the_package() -> None:
    location = Path(str(migrate.config(UNUSED_URL).get_main_option("script_location")))
    assert location == resources.files(migrate.PACKAGE)
    spec = util.find_spec(migrate.PACKAGE)
    assert spec is not None and spec.origin == str(location / "__init__.py")


def test_the_package_and_the_repository_list_the_same_revisions() -> None:
    # One copy of the scripts: the package's are the files of the top-level migrations/.
    from_package = _revisions(migrate.config(UNUSED_URL))
    from_repository = _revisions(Config(ROOT / "alembic.ini"))
    assert from_package == from_repository
    files = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")} - {"__init__.py"}
    assert set(from_package.values()) == files


def test_pyproject_maps_the_migrations_into_the_package() -> None:
    setuptools = _setuptools()
    assert setuptools["package-dir"] == {migrate.PACKAGE: "migrations"}
    packages = setuptools["packages"]
    assert isinstance(packages, list)
    # The list replaces `packages.find`: every package under service/ must be in it.
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in ROOT.glob("service/**/__init__.py")
    }
    assert set(packages) == found | {migrate.PACKAGE, f"{migrate.PACKAGE}.versions"}
    package_data = setuptools["package-data"]
    assert isinstance(package_data, dict)
    for pattern in package_data[migrate.PACKAGE]:
        assert list((ROOT / "migrations").glob(pattern)), pattern


def test_a_wheel_layout_finds_its_migrations_without_the_source_tree(tmp_path: Path) -> None:
    # The wheel's layout, made as pyproject.toml says: service/, with migrations/ inside it as
    # service/store/migrations. Nothing sits beside service/, as in site-packages.
    site = tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "service", site / "service", ignore=ignore)
    shutil.copytree(ROOT / "migrations", site / "service" / "store" / "migrations", ignore=ignore)
    probe = (
        "import json; from alembic.script import ScriptDirectory; "
        "from service.store import migrate; "
        "config = migrate.config('postgresql://unused/none'); "
        "scripts = ScriptDirectory.from_config(config); "
        "print(json.dumps([config.get_main_option('script_location'), "
        "[s.revision for s in scripts.walk_revisions()]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=child_env({"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    location, revisions = json.loads(result.stdout)
    assert Path(location) == site / "service" / "store" / "migrations"
    assert revisions == list(_revisions(migrate.config(UNUSED_URL)))


async def test_alembic_upgrade_head_from_the_repository(database_url: str) -> None:
    # What developers run: the top-level alembic.ini and migrations/, DATABASE_URL set.
    name = f"durable_alembic_{uuid.uuid4().hex[:12]}"
    async with scratch_database(database_url, name) as url:
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env=child_env(database_url=url),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert await asyncio.to_thread(migrate.check, url) is None
