"""An object's log lines are read by the primary key, however many lines every object has:
a page by seq range, the next page after a cursor, and a follower's read of what is new."""

from __future__ import annotations

import json

import asyncpg

from service.store import history_queries

#: Lines of 1,000 objects, 100 turns each, three lines a turn.
FILL = """
INSERT INTO object_logs (object_id, seq, line, logged_at, level, logger, message)
SELECT md5(o::text) || md5(o::text), t, l, now() - (100 - t) * interval '1 minute', 20,
       'room', 'line ' || l || ' of turn ' || t
  FROM generate_series(1, 1000) AS o, generate_series(1, 100) AS t, generate_series(1, 3) AS l
 ORDER BY t, o, l
"""


def _nodes(plan: dict[str, object]) -> list[dict[str, object]]:
    found = [plan]
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found += _nodes(child)
    return found


async def test_pages_and_follows_read_one_object_by_its_primary_key(
    sql: asyncpg.Connection,
) -> None:
    await sql.execute(FILL)
    await sql.execute("ANALYZE object_logs")
    one = "c4ca4238a0b923820dcc509a6f75849b" * 2  # md5('1') twice
    last_id = await sql.fetchval("SELECT max(id) FROM object_logs")
    asked = {
        "a seq range": (one, 49, 2**63 - 1, 70, None, None, 100),
        "after a cursor": (one, 80, 12345, 2**63 - 1, None, None, 100),
        "what is new": (one, 100, last_id, 2**63 - 1, None, None, 1000),
    }
    for what, args in asked.items():
        (row,) = await sql.fetch("EXPLAIN (FORMAT JSON) " + history_queries.LINES_IN, *args)
        nodes = _nodes(json.loads(row[0])[0]["Plan"])
        kinds = {node["Node Type"] for node in nodes}
        assert "Seq Scan" not in kinds, (what, kinds)
        assert any(node.get("Index Name") == "pk_object_logs" for node in nodes), (what, nodes)
    page = await sql.fetch(history_queries.LINES_IN, *asked["a seq range"])
    assert [(r["seq"], r["line"]) for r in page[:4]] == [(50, 1), (50, 2), (50, 3), (51, 1)]
    assert {r["object_id"] for r in page} == {one}
