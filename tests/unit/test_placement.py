"""Rendezvous hashing: the same host for an object wherever it is asked, spread over the
hosts, and a host that leaves moves only its own objects."""

from __future__ import annotations

from collections import Counter

from service.runtime.placement import rendezvous

OBJECTS = [f"object-{n}" for n in range(2000)]


def test_the_choice_depends_only_on_the_object_and_the_set_of_hosts() -> None:
    hosts = ["h1", "h2", "h3"]
    for object_id in OBJECTS[:50]:
        assert rendezvous(object_id, hosts) == rendezvous(object_id, list(reversed(hosts)))
    assert rendezvous("x", []) is None
    assert rendezvous("x", ["only"]) == "only"


def test_objects_spread_over_the_hosts() -> None:
    counts = Counter(rendezvous(o, ["h1", "h2", "h3", "h4"]) for o in OBJECTS)
    assert set(counts) == {"h1", "h2", "h3", "h4"}
    assert all(400 < n < 600 for n in counts.values()), counts


def test_a_host_that_leaves_moves_only_its_own_objects_and_one_that_joins_takes_a_share() -> None:
    before = {o: rendezvous(o, ["h1", "h2", "h3"]) for o in OBJECTS}
    after = {o: rendezvous(o, ["h1", "h3"]) for o in OBJECTS}
    moved = {o for o in OBJECTS if before[o] != after[o]}
    assert moved == {o for o in OBJECTS if before[o] == "h2"}
    joined = {o: rendezvous(o, ["h1", "h2", "h3", "h4"]) for o in OBJECTS}
    changed = {o for o in OBJECTS if joined[o] != before[o]}
    assert all(joined[o] == "h4" for o in changed)
    assert 350 < len(changed) < 650
