"""The one backoff: doubling delays, capped, reset after a success."""

from __future__ import annotations

from service.backoff import Backoff


def test_delays_double_up_to_the_cap_and_start_again_after_a_reset():
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1
