"""An application module that fails while it is imported."""

from __future__ import annotations

raise RuntimeError("the application could not configure itself")
