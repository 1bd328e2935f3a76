"""The operator's writes to the log (the ``OperatorLog`` port): an object started with one
event, written by the same flush function as every node's commits."""

from __future__ import annotations

import asyncpg

from service.events import types
from service.ports.errors import ConflictError
from service.ports.history import ObjectExistsError
from service.ports.records import Append
from service.store import batch, queries

# The positions lock of durable_flush_v1 (migration dd9f2007840a), taken first, before this
# transaction has an id: transaction id order then stays position order, which the global
# tail relies on (see history_queries.TAIL). durable_flush_v1 takes it again (it is
# re-entrant within a transaction).
TAKE_POSITIONS_LOCK = "SELECT pg_advisory_xact_lock(7305528449176000001)"

# The catalog row of a new object, unowned; one that exists already is left as it is.
ADD_CATALOG_ROW = """
INSERT INTO objects (object_id, binding, name) VALUES ($1, $2, $3)
ON CONFLICT (object_id) DO NOTHING
"""

# The catalog row, locked until commit: no node advances the object meanwhile.
CATALOG_ROW = """
SELECT binding, last_seq, owner_node, owner_epoch FROM objects WHERE object_id = $1 FOR UPDATE
"""

#: The node id the flush function is given for the operator's writes (it names the node of
#: accepted sockets, which a first event never has).
OPERATOR = "operator"


async def start_object(
    connection: asyncpg.Connection,
    object_id: str,
    binding: str,
    name: str | None,
    first: types.Event,
    channel: str,
) -> None:
    """In one transaction: the catalog row, ``first`` as event 1 and its projections.

    An object whose catalog row exists without events (a node woke it and it recorded
    nothing) is taken as it is, unless a node runs it now: that instance would go on
    answering from its empty state until its next write found seq 1 taken.
    """
    async with connection.transaction():
        await connection.execute(TAKE_POSITIONS_LOCK)
        await connection.execute(ADD_CATALOG_ROW, object_id, binding, name)
        row = await connection.fetchrow(CATALOG_ROW, object_id)
        label = f"{binding}/{name}" if name is not None else f"{binding} {object_id}"
        if row["binding"] != binding:
            raise ObjectExistsError(
                f"the id of {label} ({object_id}) belongs to an object of binding {row['binding']}"
            )
        if row["last_seq"] > 0:
            raise ObjectExistsError(
                f"{label} ({object_id}) exists already, with {row['last_seq']} events: "
                "choose another name"
            )
        if row["owner_node"] is not None:
            raise ObjectExistsError(
                f"{label} ({object_id}) has no events but runs on node {row['owner_node']}: "
                "try again once it has hibernated, or choose another name"
            )
        rows = batch.build({object_id: [Append(object_id, row["owner_epoch"], 0, [first])]}, [])
        arguments = rows.arguments(OPERATOR, channel, events=True)
        _, stale, _ = await connection.fetchrow(queries.FLUSH, *arguments)
        if stale:  # the row is locked: only a damaged catalog gets here
            raise ConflictError(f"{label} ({object_id}) moved while it was being started")
