"""An application module that names its Application something other than `app`."""

from __future__ import annotations

from echo import Echo  # a sibling file: the loader puts this directory on sys.path

from service import Application

chat = Application({"ECHO": Echo})
