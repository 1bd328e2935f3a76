"""The outbox: frames objects send to sockets other nodes hold, committed with their events

A socket stays on the node it connected to; its object may run on another. What the object
sends such a socket (a frame, a close) is written to ``outbox`` by the flush that commits
the turn that sent it, in the same transaction as that turn's events: a turn that does not
commit sends nothing, and a former owner fenced by its epoch delivers nothing (its flush
is rolled back). Each row is addressed to the node holding the socket, as ``websockets``
records it, and carries a ``position`` taken under the flushes' positions lock, so a node
reading its rows in position order reads them in commit order and never skips a row that
commits late. The holding node delivers its rows in that order and deletes them.

``durable_route_v1`` replaces the flush's call of ``durable_wake_v1``: it writes the
outbox rows and sends each destination node one NOTIFY for the whole flush, naming the
objects woken there (new inbox rows) and the newest outbox position written for it. A
payload an older node reads as a plain wake (it ignores the position). ``durable_flush_v1``
is left as it is.

Rows for nodes that have stopped or were swept are not written (nobody would deliver them);
the sweep of a dead node deletes those it left.

Revision ID: c4e8a1b2d3f5
Revises: 7b3e0c94d1f6
Create Date: 2026-12-16 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c4e8a1b2d3f5"
down_revision: str | None = "7b3e0c94d1f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row of a flush's outbox, as the service's flush_records.outbox makes it.
OUTBOX_TYPE = """
CREATE TYPE durable_outbox_v1 AS (
    object_id text,
    socket_id text,
    kind text,
    text text,
    data bytea,
    close_code integer,
    close_reason text
)
"""

# The payload is the service's Wake (notifications.py): the objects woken on that node and
# the newest outbox position written for it (either may be empty). Past 7000 bytes the ids
# give way to "poll your inbox" (PostgreSQL refuses payloads of 8000 bytes or more).
ROUTE = """
CREATE FUNCTION durable_route_v1(writer text, woken_ids text[], frames durable_outbox_v1[])
RETURNS integer
LANGUAGE plpgsql AS $body$
DECLARE
    holders text[] := '{}';
    newest bigint[] := '{}';
    destination record;
    payload text;
    sent integer := 0;
BEGIN
    IF cardinality(frames) > 0 THEN
        -- In the order given (each socket's in turn order). The flush holds the positions
        -- lock (durable_flush_v1 took it first), so positions follow commit order. A socket
        -- this node holds, one that has closed, or one on a node that has stopped or was
        -- swept gets no row: nobody would deliver it.
        WITH added AS (
            INSERT INTO outbox (node, object_id, socket_id, kind, text, data, close_code,
                                close_reason)
            SELECT w.node, f.object_id, f.socket_id, f.kind, f.text, f.data, f.close_code,
                   f.close_reason
              FROM unnest(frames) WITH ORDINALITY AS f
              JOIN websockets AS w
                ON w.object_id = f.object_id AND w.socket_id = f.socket_id
              JOIN nodes AS n ON n.node_id = w.node
             WHERE w.node <> writer AND w.closed_at IS NULL
               AND n.stopped_at IS NULL AND n.swept_at IS NULL
             ORDER BY f.ordinality
            RETURNING node, position
        )
        SELECT coalesce(array_agg(t.node), '{}'), coalesce(array_agg(t.top), '{}')
          INTO holders, newest
          FROM (SELECT a.node, max(a.position) AS top FROM added AS a GROUP BY a.node) AS t;
    END IF;

    -- One NOTIFY per destination node: it takes a lock at commit that serialises committers.
    FOR destination IN
        SELECT coalesce(w.node_id, d.node_id) AS node_id, w.object_ids, d.position
          FROM (SELECT t.node_id, json_agg(t.object_id ORDER BY t.object_id) AS object_ids
                  FROM (SELECT DISTINCT u.object_id, coalesce(l.node_id, writer) AS node_id
                          FROM unnest(woken_ids) AS u(object_id)
                          LEFT JOIN objects AS o ON o.object_id = u.object_id
                          LEFT JOIN live_nodes AS l ON l.node_id = o.owner_node) AS t
                 GROUP BY t.node_id) AS w
          FULL JOIN unnest(holders, newest) AS d(node_id, position) ON d.node_id = w.node_id
    LOOP
        payload := json_build_object(
            'kind', 'wake',
            'object_ids', coalesce(destination.object_ids, '[]'::json),
            'position', destination.position
        )::text;
        IF length(payload) > 7000 THEN
            payload := json_build_object(
                'kind', 'wake_all', 'position', destination.position
            )::text;
        END IF;
        PERFORM pg_notify(durable_channel_v1(destination.node_id), payload);
        sent := sent + 1;
    END LOOP;
    RETURN sent;
END
$body$
"""

COMMENTS = (
    """
    COMMENT ON FUNCTION durable_route_v1 IS
    'Writes a flush''s outbox rows and wakes each destination node once: its objects with new '
    'inbox rows, and the newest outbox position written for it'
    """,
)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column(
            "node",
            sa.Text(),
            nullable=False,
            comment="Node whose gateway holds the socket: the one that delivers the row",
        ),
        sa.Column(
            "position",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="Delivery order; assigned under the flushes' lock, so it follows commits",
        ),
        sa.Column("object_id", sa.Text(), nullable=False, comment="The object that sent it"),
        sa.Column("socket_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, comment="text, binary or close"),
        sa.Column("text", sa.Text(), nullable=True, comment="A text frame's text"),
        sa.Column("data", postgresql.BYTEA(), nullable=True, comment="A binary frame's bytes"),
        sa.Column("close_code", sa.Integer(), nullable=True, comment="A close's code, if any"),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("node", "position", name=op.f("pk_outbox")),
        comment="Frames and closes objects sent to sockets other nodes hold, committed with "
        "the events that caused them; deleted once the holding node has delivered them.",
    )
    for statement in (OUTBOX_TYPE, ROUTE, *COMMENTS):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION durable_route_v1")
    op.execute("DROP TYPE durable_outbox_v1")
    op.drop_table("outbox")
