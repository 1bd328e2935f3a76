"""An application module that names its Application something other than `app`."""

from __future__ import annotations

# A sibling file: the loader puts this directory on sys.path.
from echo import Echo  # type: ignore[import-not-found]

from service import Application

chat = Application({"ECHO": Echo})
