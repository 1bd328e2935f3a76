"""The README's queries at a million events: each reads the log and the sockets by index.

One database per module is filled straight from SQL (generate_series) with a month of a
busy service: a lobby that saw 20,000 sockets come and go, 2,000 quieter chat rooms and
game matches, 100,000 sockets of which 10,000 are open, and 1,000,000 events (each socket
accepted, given its attachment, sending frames whose effects are stored, and closing).
After ANALYZE, every README query is EXPLAINed with the values a person would give it, and
its plan must never scan ``events`` or ``websockets`` whole, and must use the index the
README says serves it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from pytest_postgresql.executors.noop import NoopExecutor

from service.store import history_queries
from tests import sql_examples

#: The tests share the module's database, and so its event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

#: Events of every socket: accepted, attachment, then frames and what each one stored.
EVENTS_PER_SOCKET = 10

# The objects: the lobby, busy for a month, then 2,000 rooms and matches. An id is 64 hex
# characters, as the service makes them.
FILL_OBJECTS = """
INSERT INTO objects (object_id, binding, name, created_at, last_seq)
SELECT md5(binding || '/' || name) || md5(name || '/' || binding), binding, name,
       now() - interval '30 days', sockets * $1
  FROM (SELECT 'CHAT' AS binding, 'lobby' AS name, 20000 AS sockets
        UNION ALL
        SELECT CASE WHEN i % 2 = 0 THEN 'CHAT' ELSE 'GAME' END,
               CASE WHEN i % 2 = 0 THEN 'room-' ELSE 'match-' END || i, 40
          FROM generate_series(1, 2000) AS i) AS catalog
"""

# The sockets, spread evenly over the month in each object (the lobby's 20,000 a couple of
# minutes apart, the others' 40 some eighteen hours apart); each lived three minutes, but
# the newest tenth of every object's are still open: 10,000 in all. Among 50,000 people.
FILL_SOCKETS = """
CREATE TEMPORARY TABLE fill_sockets AS
SELECT o.object_id, o.binding, o.name, s.n, md5(o.object_id || s.n) AS socket_id,
       'user-' || (s.n * 7919 + length(o.name)) % 50000 AS who,
       now() - interval '30 days' + s.n * (interval '30 days' / o.last_seq * $1)
         + (hashtext(o.object_id) & 1023) * interval '1 second' AS connected_at,
       s.n >= o.last_seq / $1 * 9 / 10 AS open
  FROM objects AS o
 CROSS JOIN LATERAL generate_series(0, o.last_seq / $1 - 1) AS s(n)
 ORDER BY connected_at
"""

FILL_WEBSOCKETS = """
INSERT INTO websockets (object_id, socket_id, tags, attachment, node, connected_at,
                        last_activity_at, closed_at, close_code, close_reason, was_clean)
SELECT object_id, socket_id,
       CASE WHEN binding = 'CHAT' THEN ARRAY['room:' || name, 'user:' || who]
            ELSE ARRAY['player:' || who] END,
       CASE WHEN binding = 'CHAT' THEN jsonb_build_object('username', who)
            ELSE jsonb_build_object('playerId', who) END,
       'node-1', connected_at, connected_at + interval '160 seconds',
       CASE WHEN NOT open THEN connected_at + interval '180 seconds' END,
       CASE WHEN NOT open THEN 1001 END, CASE WHEN NOT open THEN '' END,
       CASE WHEN NOT open THEN true END
  FROM fill_sockets
"""

# Each socket's events, twenty seconds apart, socket after socket in the order they
# connected (so position roughly follows time, and an object's events are spread over the
# table as a month of traffic spreads them; sorting the events themselves costs seconds):
# accepted, attachment, then four frames, each followed by what it stored (a chat message
# or the game), and the close (an open socket's last frame is still being answered).
FILL_EVENTS = """
INSERT INTO events (object_id, seq, type, data, recorded_at)
SELECT s.object_id, s.n * $1 + k + 1, kind.type, (
       CASE kind.type
       WHEN 'websocket_accepted' THEN
            '{"socket_id":"' || s.socket_id || '","tags":["user:' || s.who
            || '"],"hibernatable":true,"url":null,"protocol":null}'
       WHEN 'attachment_set' THEN
            '{"socket_id":"' || s.socket_id || '","attachment":{"'
            || CASE WHEN s.binding = 'CHAT' THEN 'username' ELSE 'playerId' END
            || '":"' || s.who || '"}}'
       WHEN 'message_received' THEN
            '{"socket_id":"' || s.socket_id || '","text":"'
            || CASE WHEN s.binding = 'CHAT' THEN '{\\"type\\": \\"message\\", \\"text\\": \\"hi\\"}'
                    ELSE '{\\"type\\": \\"move\\", \\"cell\\": ' || k % 9 || '}' END
            || '","binary":null}'
       WHEN 'storage_put' THEN
            CASE WHEN s.binding = 'CHAT' THEN
                 '{"entries":{"message:' || lpad((s.n * 4 + k / 2)::text, 12, '0')
                 || '":{"id":' || s.n * 4 + k / 2 || ',"username":"' || s.who
                 || '","text":"hi","at":0}}}'
            ELSE '{"entries":{"game":{"board":["X","","","","O","","","",""],"turn":"X"}}}' END
       ELSE '{"socket_id":"' || s.socket_id || '","code":1001,"reason":"","was_clean":true}'
       END)::json,
       s.connected_at + k * interval '20 seconds'
  FROM fill_sockets AS s
 CROSS JOIN generate_series(0, $1 - 1) AS k
 CROSS JOIN LATERAL (
       SELECT CASE WHEN k = 0 THEN 'websocket_accepted'
                   WHEN k = 1 THEN 'attachment_set'
                   WHEN k = $1 - 1 AND NOT s.open THEN 'websocket_closed'
                   WHEN k % 2 = 0 THEN 'message_received'
                   ELSE 'storage_put' END AS type) AS kind
"""

# A table's indexes as statements that drop them and make them again, as they were:
# constraints (primary key, unique) through ALTER TABLE, the others by their definition.
INDEXES_OF = """
SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', $1::text, c.conname) AS drop,
       format('ALTER TABLE %I ADD CONSTRAINT %I %s', $1::text, c.conname,
              pg_get_constraintdef(c.oid)) AS make
  FROM pg_constraint AS c
 WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u')
UNION ALL
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
  FROM pg_index AS i
 WHERE i.indrelid = $1::regclass
   AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
"""

#: Each README query, and the indexes its plan must use.
EXPECTED_INDEXES = {
    "online-in-room": {"ix_objects_binding_name", "ix_websockets_open"},
    "user-everywhere": {"ix_websockets_tags"},
    "sockets-per-object": {"ix_websockets_open"},
    # Any index of the open sockets alone will do: by object, or by node (the sweep's).
    "idle": {"ix_websockets_open|ix_websockets_open_by_node"},
    "room-frames": {"ix_objects_binding_name", "pk_events", "pk_websockets"},
    "room-messages": {"ix_objects_binding_name", "pk_events"},
    "player-actions": {"ix_objects_binding_name", "pk_events"},
    "in-room-at": {"ix_objects_binding_name", "ix_websockets_object_id_closed_at"},
}


async def _fill(connection: asyncpg.Connection) -> None:
    async with connection.transaction():
        # Building an index once is several times faster than growing it row by row, so
        # the big tables are filled without theirs, which are then made again as they were.
        remade = []
        for table in ("events", "websockets"):
            for index in await connection.fetch(INDEXES_OF, table):
                await connection.execute(index["drop"])
                remade.append(index["make"])
        await connection.execute("SET LOCAL work_mem = '256MB'")
        await connection.execute("SET LOCAL maintenance_work_mem = '256MB'")
        await connection.execute(FILL_OBJECTS, EVENTS_PER_SOCKET)
        await connection.execute(FILL_SOCKETS, EVENTS_PER_SOCKET)
        await connection.execute(FILL_WEBSOCKETS)
        await connection.execute(FILL_EVENTS, EVENTS_PER_SOCKET)
        for statement in remade:
            await connection.execute(statement)
    # Statistics for the planner, and the visibility map of the sockets, whose open ones
    # are counted from their index alone.
    await connection.execute("VACUUM ANALYZE objects, websockets")
    await connection.execute("ANALYZE events")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def busy_database(
    postgresql_server_url: str, postgresql_template: NoopExecutor
) -> AsyncIterator[str]:
    name = f"durable_plans_{uuid.uuid4().hex[:12]}"
    async with sql_examples.database_from_template(
        postgresql_server_url, postgresql_template.template_dbname, name
    ) as url:
        connection = await asyncpg.connect(url)
        try:
            started = time.perf_counter()
            await _fill(connection)
            print(f"filled {name} in {time.perf_counter() - started:.1f} s")
        finally:
            await connection.close()
        yield url


# The values a person would give the queries here: the busy lobby, someone connected to a
# room, a player of a match, a time an hour ago, five minutes of silence.
VALUES = """
SELECT 'lobby' AS room,
       (SELECT attachment->>'username' FROM presence
         WHERE binding = 'CHAT' AND name = 'room-2' LIMIT 1) AS user,
       'match-1' AS match,
       (SELECT w.attachment->>'playerId' FROM websockets AS w JOIN objects AS o USING (object_id)
         WHERE o.binding = 'GAME' AND o.name = 'match-1' LIMIT 1) AS player,
       (now() - interval '1 hour')::text AS at,
       '5 minutes' AS idle
"""


async def _values(url: str) -> dict[str, str]:
    connection = await asyncpg.connect(url)
    try:
        return dict(await connection.fetchrow(VALUES))
    finally:
        await connection.close()


@in_module_loop
async def test_the_fill_is_what_the_queries_are_measured_against(busy_database: str) -> None:
    connection = await asyncpg.connect(busy_database)
    try:
        counts = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM events) AS events, "
            "(SELECT count(*) FROM websockets) AS sockets, "
            "(SELECT count(*) FROM presence) AS open, "
            "(SELECT count(*) FROM objects) AS objects"
        )
        assert dict(counts) == {
            "events": 1_000_000,
            "sockets": 100_000,
            "open": 10_000,
            "objects": 2_001,
        }
        # Gapless per object, as the service writes them.
        gaps = await connection.fetchval(
            "SELECT count(*) FROM objects AS o "
            "WHERE o.last_seq <> (SELECT count(*) FROM events AS e WHERE e.object_id = o.object_id)"
        )
        assert gaps == 0
    finally:
        await connection.close()
    # The values given below find something: the plans are those of real questions.
    examples = sql_examples.examples()
    values = await _values(busy_database)
    for name in ("online-in-room", "user-everywhere", "player-actions", "in-room-at"):
        example = examples[name]
        given = {variable: values[variable] for variable in example.defaults}
        assert await sql_examples.rows(busy_database, example, given), name


def test_every_readme_query_has_its_expected_plan() -> None:
    assert set(EXPECTED_INDEXES) == set(sql_examples.examples())


@in_module_loop
@pytest.mark.parametrize("name", sorted(EXPECTED_INDEXES))
async def test_the_query_reads_through_indexes(busy_database: str, name: str) -> None:
    example = sql_examples.examples()[name]
    values = await _values(busy_database)
    plan = await sql_examples.plan(
        busy_database, example, {variable: values[variable] for variable in example.defaults}
    )
    scanned: list[dict[str, Any]] = list(sql_examples.nodes(plan))
    whole = {node["Relation Name"] for node in scanned if node["Node Type"] == "Seq Scan"} & {
        "events",
        "websockets",
    }
    assert not whole, f"{name} scans {whole} whole:\n{plan}"
    used = {node["Index Name"] for node in scanned if "Index Name" in node}
    missing = [one for one in EXPECTED_INDEXES[name] if not set(one.split("|")) & used]
    assert not missing, f"{name} uses {used}, not {missing}:\n{plan}"
    if name == "room-messages":
        # It reads nothing of the sockets, so object_history does not join them.
        assert "websockets" not in {node.get("Relation Name") for node in scanned}


# The pages of an object's timeline (``history_queries.EVENTS_IN`` and
# ``EVENTS_IN_DESCENDING``) with the values the dashboard gives them: the newest page, the
# page just below the middle of the log, the first page, the page just after the middle.
TIMELINE_PAGES = {
    "newest": ("EVENTS_IN_DESCENDING", 0, 2**63 - 1),
    "below the middle": ("EVENTS_IN_DESCENDING", 0, 100_000),
    "oldest": ("EVENTS_IN", 0, 2**63 - 1),
    "after the middle": ("EVENTS_IN", 100_000, 2**63 - 1),
}


@in_module_loop
@pytest.mark.parametrize("page", sorted(TIMELINE_PAGES))
@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_page_of_a_long_timeline_reads_its_rows_from_the_primary_key(
    busy_database: str, page: str, mode: str
) -> None:
    """The lobby has 200,000 events among a million: any page of 100 of them is read from
    pk_events in its order (backwards, newest first), with no sort and no scan, whatever
    plan the prepared statement settles on."""
    name, after_seq, until_seq = TIMELINE_PAGES[page]
    query = getattr(history_queries, name)
    connection = await asyncpg.connect(busy_database)
    try:
        lobby = await connection.fetchval(
            "SELECT object_id FROM objects WHERE binding = 'CHAT' AND name = 'lobby'"
        )
        await connection.execute(
            "PREPARE page (text, bigint, bigint, timestamptz, timestamptz, text[], integer) AS "
            + query
        )
        await connection.execute(f"SET plan_cache_mode = {mode}")
        # The arguments are this test's own (an id of hex digits, numbers): spliced in.
        explained = await connection.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE page("
            f"'{lobby}', {after_seq}, {until_seq}, NULL, NULL, NULL, 101)"
        )
    finally:
        await connection.close()
    plan = json.loads(explained)[0]["Plan"]
    scanned = list(sql_examples.nodes(plan))
    kinds = {node["Node Type"] for node in scanned}
    assert "Sort" not in kinds and "Seq Scan" not in kinds, plan
    (scan,) = [node for node in scanned if node.get("Index Name") == "pk_events"]
    assert scan["Scan Direction"] == ("Backward" if "DESCENDING" in name else "Forward")
    assert plan["Actual Rows"] == 101
    # A page costs its rows' heap pages and an index descent, not the log's size.
    assert plan["Shared Hit Blocks"] + plan["Shared Read Blocks"] < 400, plan
