"""SQL of the history's reads that the hot path never runs (those are in ``queries.py``)."""

from __future__ import annotations

# The last seq of an object recorded at or before a time (0: none). Events of one flush
# share its recorded_at, so a time never splits a turn.
SEQ_AT_TIME = """
SELECT coalesce(max(seq), 0) FROM events WHERE object_id = $1 AND recorded_at <= $2
"""
