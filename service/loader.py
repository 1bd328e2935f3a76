"""Finding the Application a user points `durable serve` at."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from service.api.application import Application

#: The attribute looked up when the target does not name one.
DEFAULT_ATTRIBUTE = "app"

_EXAMPLE = "app = Application({'CHAT': ChatRoom})"


class LoadError(Exception):
    """The target does not lead to an Application; the message says why and what to do."""


def load_application(target: str) -> Application:
    """Load the Application a target names.

    A target is a directory (its ``app.py``), a ``.py`` file, or a dotted module, each
    optionally followed by ``:attribute`` (default ``app``).
    """
    location, attribute = _split(target)
    if _looks_like_path(location):
        module = _import_file(_file_of(Path(location)))
    else:
        module = _import_module(location)
    return _application_in(module, attribute, location)


def _split(target: str) -> tuple[str, str]:
    location, sep, attribute = target.rpartition(":")
    if not sep or not attribute.isidentifier():
        return target, DEFAULT_ATTRIBUTE
    return location, attribute


def _looks_like_path(location: str) -> bool:
    return (
        location.endswith(".py") or "/" in location or "\\" in location or Path(location).is_dir()
    )


def _file_of(path: Path) -> Path:
    if path.is_dir():
        file = path / "app.py"
        if not file.is_file():
            raise LoadError(f"{path} is a directory without an app.py")
        return file
    if not path.exists():
        raise LoadError(f"no such file or directory: {path}")
    if path.suffix != ".py":
        raise LoadError(f"{path} is not a Python file (.py) nor a directory with an app.py")
    return path


def _import_file(path: Path) -> ModuleType:
    """Import a file as a module of its own; its directory goes on sys.path for siblings."""
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"durable_app_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise LoadError(_failure(str(path), error)) from error
    return module


def _import_module(name: str) -> ModuleType:
    # Like `python -m`, resolve a dotted name against the current directory too.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name + ".").startswith(error.name + "."):
            raise LoadError(
                f"no module named {name!r} (give a module importable from here, "
                "a .py file or a directory with an app.py)"
            ) from error
        raise LoadError(_failure(name, error)) from error
    except Exception as error:
        raise LoadError(_failure(name, error)) from error


def _failure(where: str, error: Exception) -> str:
    """The user's own code failed while importing: show where, as Python would."""
    trace = "".join(traceback.format_exception(error)).rstrip()
    return f"importing {where} failed:\n{trace}"


def _application_in(module: ModuleType, attribute: str, location: str) -> Application:
    value = getattr(module, attribute, None)
    if isinstance(value, Application):
        return value
    if value is None and not hasattr(module, attribute):
        found = [k for k, v in vars(module).items() if isinstance(v, Application)]
        hint = f"; it has {', '.join(found)}: use {location}:{found[0]}" if found else ""
        raise LoadError(f"{location} defines no `{attribute}`{hint} (expected e.g. `{_EXAMPLE}`)")
    raise LoadError(
        f"{location}: `{attribute}` is {type(value).__name__}, not a service.Application "
        f"(expected e.g. `{_EXAMPLE}`)"
    )
