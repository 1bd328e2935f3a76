"""Finding the Application a user points `durable serve` at."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from service.api.application import Application


def load_application(target: str) -> Application:
    """Load ``app`` from a directory (its ``app.py``), a ``.py`` file, or ``module[:attr]``."""
    attribute = "app"
    path = Path(target)
    if path.is_dir():
        path = path / "app.py"
    if path.suffix == ".py":
        if not path.is_file():
            raise SystemExit(f"error: no application file at {path}")
        module = _import_file(path)
    else:
        module_name, _, attr = target.partition(":")
        attribute = attr or attribute
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise SystemExit(f"error: cannot import {module_name!r}: {error}") from error
    application = getattr(module, attribute, None)
    if not isinstance(application, Application):
        raise SystemExit(
            f"error: {target} must define `{attribute} = Application(bindings={{...}})`"
        )
    return application


def _import_file(path: Path):  # type: ignore[no-untyped-def]
    path = path.resolve()
    name = f"durable_app_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(module)
    return module
