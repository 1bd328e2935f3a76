"""Fixtures of the fault tests: the store tests' opened event stores, for the store's own."""

from __future__ import annotations

from tests.store.conftest import stores

__all__ = ["stores"]
