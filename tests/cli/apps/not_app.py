"""An application module whose `app` is not an Application."""

from __future__ import annotations

app = {"ECHO": "not a class"}
