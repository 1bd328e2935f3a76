"""GC tuning: what a node sets at start, and that 0 leaves Python's defaults alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from service import tuning


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_raises_the_young_threshold_and_freezes_what_exists(restore_gc: None) -> None:
    _, middle, oldest = gc.get_threshold()
    survivor = [object() for _ in range(10)]
    tuning.tune_gc(50_000)
    assert gc.get_threshold() == (50_000, middle, oldest)
    assert gc.get_freeze_count() >= len(survivor)


def test_zero_leaves_the_defaults(restore_gc: None) -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    tuning.tune_gc(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
