"""A rolling deploy: nodes of the previous version keep flushing beside durable_flush_v1."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from service.events import types
from service.ports.records import Append
from service.store import flush_records, migrate, queries
from service.store.event_store import CHANNEL, EventStore

#: durable_flush's parameters as a node of the previous version passes them (migration
#: ed77d88a0453): pinned here, since that node's code is no longer in this tree.
PREVIOUS_PARAMETERS = (
    *("node_id", "channel", "wake", "object_ids", "expected_seqs", "last_seqs", "epochs"),
    *("event_objects", "event_seqs", "event_types", "event_versions", "event_data"),
    *("accepted_objects", "accepted_sockets", "accepted_tags", "accepted_hibernatables"),
    *("accepted_urls", "attached_objects", "attached_sockets", "attachments"),
    *("touched_objects", "touched_sockets", "closed_objects", "closed_sockets", "closed_codes"),
    *("closed_reasons", "closed_cleans", "alarm_objects", "alarm_ms", "unalarmed_objects"),
    *("snapshot_objects", "snapshot_seqs", "snapshot_states", "consumed_objects"),
    *("consumed_ids", "inbox_objects", "inbox_kinds", "inbox_sockets", "inbox_data"),
)
PREVIOUS_FLUSH = "SELECT xid, stale, inbox_ids FROM durable_flush({})".format(
    ", ".join(f"{name} => ${n}" for n, name in enumerate(PREVIOUS_PARAMETERS, start=1))
)

#: The revision before durable_flush_v1.
PREVIOUS_REVISION = "ed77d88a0453"

OLD_NODES_OBJECT = "a" * 64
NEW_NODES_OBJECT = "b" * 64

# Functions and composite types of the flush, by name.
FLUSH_OBJECTS = """
SELECT proname AS name FROM pg_proc WHERE proname LIKE 'durable\\_flush%'
UNION ALL
SELECT typname FROM pg_type WHERE typname LIKE 'durable\\_flush%' AND typtype = 'c'
"""


def _previous_flush(**values: Any) -> list[Any]:
    """The arguments of a previous-version flush: ``values``, and empty arrays elsewhere."""
    given = {"node_id": "node-old", "channel": CHANNEL, "wake": None, **values}
    return [given.get(name, []) for name in PREVIOUS_PARAMETERS]


async def test_a_node_of_the_previous_version_flushes_beside_a_new_one(database_url: str) -> None:
    sql = await asyncpg.connect(database_url)
    store = EventStore(database_url, "node-new")
    await store.open()
    try:
        await sql.execute(
            "INSERT INTO objects (object_id, binding, owner_node, owner_epoch) "
            "VALUES ($1, 'CHAT', 'node-old', 1)",
            OLD_NODES_OBJECT,
        )
        new = await store.claim(NEW_NODES_OBJECT, "CHAT", None)
        async with sql.transaction():
            row = await sql.fetchrow(
                PREVIOUS_FLUSH,
                *_previous_flush(
                    object_ids=[OLD_NODES_OBJECT],
                    expected_seqs=[0],
                    last_seqs=[1],
                    epochs=[1],
                    event_objects=[OLD_NODES_OBJECT],
                    event_seqs=[1],
                    event_types=["websocket_accepted"],
                    event_versions=[1],
                    event_data=['{"socket_id": "s1", "tags": ["t"]}'],
                    accepted_objects=[OLD_NODES_OBJECT],
                    accepted_sockets=["s1"],
                    accepted_tags=['["t"]'],
                    accepted_hibernatables=[True],
                    accepted_urls=[None],
                ),
            )
        assert row["stale"] == []
        accepted = types.WebSocketAccepted(socket_id="s2", tags=["u"])
        await store.append(Append(NEW_NODES_OBJECT, new.epoch, 0, [accepted]))

        events = await sql.fetch("SELECT object_id, seq FROM events ORDER BY position")
        assert [(r["object_id"], r["seq"]) for r in events] == [
            (OLD_NODES_OBJECT, 1),
            (NEW_NODES_OBJECT, 1),
        ]
        sockets = await sql.fetch("SELECT socket_id, node, tags FROM websockets ORDER BY 1")
        assert [tuple(r) for r in sockets] == [("s1", "node-old", ["t"]), ("s2", "node-new", ["u"])]
    finally:
        await store.close()
        await sql.close()


async def test_flushes_of_both_versions_queue_on_the_one_positions_lock(
    database_url: str,
) -> None:
    new, old = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        async with new.transaction():
            empty = flush_records.Arguments("node-new", CHANNEL, None, *([[]] * 10))
            await new.fetchrow(queries.FLUSH, *empty)
            # While a new node's flush is open, an old node's flush waits for it: positions
            # still follow commit order across versions.
            await old.execute("SET lock_timeout = '200ms'")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await old.fetchrow(PREVIOUS_FLUSH, *_previous_flush())
        await old.fetchrow(PREVIOUS_FLUSH, *_previous_flush())
    finally:
        await new.close()
        await old.close()


def test_stepping_down_drops_only_durable_flush_v1_and_its_types(database_url: str) -> None:
    async def names() -> set[str]:
        connection = await asyncpg.connect(database_url)
        try:
            return {r["name"] for r in await connection.fetch(FLUSH_OBJECTS)}
        finally:
            await connection.close()

    at_head = asyncio.run(names())
    others = flush_records.ROUTE_ROW_TYPES | flush_records.LOG_ROW_TYPES
    flush_types = set(flush_records.ROW_TYPES) - others
    assert {"durable_flush", "durable_flush_v1", *flush_types} <= at_head
    migrate.downgrade(database_url, PREVIOUS_REVISION)
    assert asyncio.run(names()) == {"durable_flush"}
    migrate.upgrade(database_url)
    assert asyncio.run(names()) == at_head
