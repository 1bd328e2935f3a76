"""The flush's records, defined once in Python, are the migrated durable_flush_v1's."""

from __future__ import annotations

import asyncpg

from service.store import flush_records, queries

# Fields of a composite type, in order, with their types as SQL spells them.
FIELDS_OF_TYPE = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_type AS t
  JOIN pg_attribute AS a ON a.attrelid = t.typrelid
 WHERE t.typname = $1 AND t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""

# Columns of a table, with their types.
COLUMNS_OF_TABLE = """
SELECT attname AS name, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
"""

# Input parameters of a function, in order, with their types.
PARAMETERS_OF_FUNCTION = """
SELECT p.name, format_type(p.type, NULL) AS type
  FROM pg_proc AS f,
       unnest(f.proargnames, f.proallargtypes, f.proargmodes)
       WITH ORDINALITY AS p(name, type, mode, n)
 WHERE f.proname = $1 AND p.mode = 'i'
 ORDER BY p.n
"""


async def test_each_row_function_has_the_fields_of_its_composite_type(
    sql: asyncpg.Connection,
) -> None:
    assert flush_records.ROW_TYPES
    for name, function in flush_records.ROW_TYPES.items():
        rows = await sql.fetch(FIELDS_OF_TYPE, name)
        assert [(r["name"], r["type"]) for r in rows] == flush_records.fields(function), name


async def test_the_arguments_are_the_parameters_of_durable_flush_v1(
    sql: asyncpg.Connection,
) -> None:
    rows = await sql.fetch(PARAMETERS_OF_FUNCTION, "durable_flush_v1")
    assert [(r["name"], r["type"]) for r in rows] == flush_records.fields(flush_records.Arguments)


def test_every_array_of_records_has_its_row_function() -> None:
    arrays = {
        sql_type.removesuffix("[]")
        for _, sql_type in flush_records.fields(flush_records.Arguments)
        if sql_type.endswith("[]")
    }
    others = flush_records.ROUTE_ROW_TYPES | flush_records.LOG_ROW_TYPES
    assert arrays | others == set(flush_records.ROW_TYPES)


async def test_the_outbox_rows_are_a_parameter_of_durable_route_v2(sql: asyncpg.Connection) -> None:
    arguments = await sql.fetchval("SELECT pg_get_function_arguments('durable_route_v2'::regproc)")
    assert arguments == "writer text, woken_ids text[], frames durable_outbox_v2[]"
    # The previous version's stays for its nodes, through a rolling deploy.
    arguments = await sql.fetchval("SELECT pg_get_function_arguments('durable_route_v1'::regproc)")
    assert arguments == "writer text, woken_ids text[], frames durable_outbox_v1[]"


async def test_the_log_lines_are_the_parameter_of_durable_logs_v1(sql: asyncpg.Connection) -> None:
    arguments = await sql.fetchval("SELECT pg_get_function_arguments('durable_logs_v1'::regproc)")
    assert arguments == "lines durable_log_v1[]"


async def test_a_large_flush_copies_each_event_field_into_the_column_of_that_name(
    sql: asyncpg.Connection,
) -> None:
    rows = await sql.fetch(COLUMNS_OF_TABLE, "events")
    columns = {r["name"]: r["type"] for r in rows}
    fields = flush_records.fields(flush_records.event)
    assert [(name, columns.get(name)) for name, _ in fields] == fields
    assert tuple(name for name, _ in fields) == queries.EVENT_COLUMNS
