"""What an application module declares: its bindings, an optional router, its static files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from service.api.durable_object import DurableObject
from service.api.http import Request, Response
from service.api.namespace import Env

FetchEntry = Callable[[Request, Env], Awaitable[Response]]


class Application:
    """Bindings (name -> class), an optional ``fetch(request, env)``, static files.

    Without ``fetch``, ``/<binding>/<name>[/...]`` goes to that object (binding matched
    case-insensitively) and ``/<binding>/by-id/<hex>[/...]`` to the object with that id.
    ``static_dir`` files are served as they are; ``/`` serves its ``index.html``.
    """

    def __init__(
        self,
        bindings: Mapping[str, type[DurableObject]],
        *,
        fetch: FetchEntry | None = None,
        static_dir: str | Path | None = None,
        vars: Mapping[str, Any] | None = None,
        unique_keys: Mapping[str, str] | None = None,
    ) -> None:
        for name, cls in bindings.items():
            if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
                raise TypeError(f"binding {name!r} must be a DurableObject subclass")
        self.bindings = dict(bindings)
        self.fetch = fetch
        self.static_dir = Path(static_dir) if static_dir is not None else None
        self.vars = dict(vars or {})
        #: The key each namespace's ids are MAC'd with; defaults to the binding name.
        self.unique_keys = {name: (unique_keys or {}).get(name, name) for name in bindings}

    def binding_for_path(self, segment: str) -> str | None:
        """The binding a path segment names, case-insensitively."""
        lowered = segment.lower()
        for name in self.bindings:
            if name.lower() == lowered:
                return name
        return None
