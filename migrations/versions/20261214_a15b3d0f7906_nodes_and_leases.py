"""Nodes and their leases: the nodes table, live_nodes, and one wake per owner node

Several nodes share one database. Each has a row in ``nodes``: written when it starts, its
``heartbeat_at`` moved every third of its lease timeout, ``stopped_at`` set when it stops
gracefully. A node is live while it has neither stopped nor been swept and its last
heartbeat is younger than its own ``lease_timeout`` (the view ``live_nodes``). An object
owned by a live node is never claimed by another (the claim is conditional, in the
service's queries); the owner epoch checked by every append fences a former owner that was
paused or cut off. A survivor that finds a node no longer live sweeps it once
(``swept_at``, ``swept_by``): it closes in the log the sockets that node held.

``durable_wake_v1`` sends the NOTIFYs of a flush that wrote inbox rows: one per destination
node, on that node's own channel (``durable_channel_v1``), naming its objects. An object's
destination is its live owner, or the writing node when nobody live owns it (that node then
claims it). Notifications are hints: every node also polls the inbox.

Node ids that hold open sockets from before this revision get a row whose heartbeat is the
migration's time: unless a node of that id starts within the lease timeout, a live node
sweeps them like any dead node. Nodes of the previous version take no leases and send no
heartbeats, so all nodes move to this version together.

Revision ID: a15b3d0f7906
Revises: 3c9e51d7a2b4
Create Date: 2026-12-14 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a15b3d0f7906"
down_revision: str | None = "3c9e51d7a2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_NODES = """
CREATE VIEW live_nodes AS
SELECT n.node_id, n.address, n.role, n.started_at, n.heartbeat_at, n.lease_timeout
  FROM nodes AS n
 WHERE n.stopped_at IS NULL
   AND n.swept_at IS NULL
   AND n.heartbeat_at + n.lease_timeout > now()
"""

# 63 bytes at most (NAMEDATALEN), whatever the node id: the service computes the same name
# (service/store/notifications.py), and a test compares the two.
CHANNEL = """
CREATE FUNCTION durable_channel_v1(node_id text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT 'durable_v1_' || md5(node_id) $$
"""

# The payload is the service's Wake (ids only); past 7000 bytes it is WakeAll, "poll your
# inbox" (notifications.MAX_PAYLOAD: PostgreSQL refuses 8000 bytes or more).
WAKE = """
CREATE FUNCTION durable_wake_v1(writer text, woken_ids text[]) RETURNS integer
LANGUAGE plpgsql AS $body$
DECLARE
    destination record;
    sent integer := 0;
BEGIN
    FOR destination IN
        SELECT t.node_id,
               json_build_object('kind', 'wake',
                                 'object_ids', json_agg(t.object_id ORDER BY t.object_id)
               )::text AS payload
          FROM (SELECT DISTINCT w.object_id, coalesce(l.node_id, writer) AS node_id
                  FROM unnest(woken_ids) AS w(object_id)
                  LEFT JOIN objects AS o ON o.object_id = w.object_id
                  LEFT JOIN live_nodes AS l ON l.node_id = o.owner_node) AS t
         GROUP BY t.node_id
    LOOP
        PERFORM pg_notify(
            durable_channel_v1(destination.node_id),
            CASE WHEN length(destination.payload) > 7000 THEN '{"kind": "wake_all"}'
                 ELSE destination.payload END
        );
        sent := sent + 1;
    END LOOP;
    RETURN sent;
END
$body$
"""

SEED = """
INSERT INTO nodes (node_id, lease_timeout, started_at, heartbeat_at)
SELECT w.node, interval '5 seconds', min(w.connected_at), now()
  FROM websockets AS w
 WHERE w.closed_at IS NULL AND w.node IS NOT NULL
 GROUP BY w.node
"""

COMMENTS = (
    "COMMENT ON VIEW live_nodes IS 'Nodes that may own objects now: running, heartbeat fresh'",
    "COMMENT ON COLUMN live_nodes.node_id IS 'The node''s id (--node-id)'",
    "COMMENT ON COLUMN live_nodes.address IS 'host:port it serves HTTP on'",
    "COMMENT ON COLUMN live_nodes.role IS 'all, gateway (sockets only) or host (objects only)'",
    "COMMENT ON COLUMN live_nodes.started_at IS 'When this run of the node joined'",
    "COMMENT ON COLUMN live_nodes.heartbeat_at IS 'Its last heartbeat'",
    "COMMENT ON COLUMN live_nodes.lease_timeout IS "
    "'How long after its last heartbeat the node counts as dead'",
    """
    COMMENT ON FUNCTION durable_channel_v1 IS
    'The NOTIFY channel a node listens on for wakes of its objects'
    """,
    """
    COMMENT ON FUNCTION durable_wake_v1 IS
    'Wakes the owners of objects with new inbox rows: one NOTIFY per destination node'
    """,
)


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.Text(), nullable=False, comment="The node's id (--node-id)"),
        sa.Column("address", sa.Text(), nullable=True, comment="host:port it serves HTTP on"),
        sa.Column(
            "role",
            sa.Text(),
            server_default="all",
            nullable=False,
            comment="all, gateway (sockets only) or host (objects only)",
        ),
        sa.Column(
            "lease_timeout",
            sa.Interval(),
            nullable=False,
            comment="How long after its last heartbeat the node counts as dead",
        ),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When this run of the node joined; its heartbeats name it",
        ),
        sa.Column(
            "heartbeat_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "stopped_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When it stopped gracefully; NULL while it runs",
        ),
        sa.Column(
            "swept_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When a live node closed the sockets it left open",
        ),
        sa.Column("swept_by", sa.Text(), nullable=True, comment="The node that swept it"),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_nodes")),
        comment="Nodes sharing this database, with their heartbeats: "
        "a node owns objects only while it is live.",
    )
    for statement in (LIVE_NODES, CHANNEL, WAKE, SEED, *COMMENTS):
        op.execute(statement)
    # A dead node's open sockets, which a survivor closes (and a restarted node its own):
    # found without reading every socket ever connected.
    op.create_index(
        "ix_websockets_open_by_node",
        "websockets",
        ["node"],
        postgresql_where=sa.text("closed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_websockets_open_by_node", table_name="websockets")
    op.execute("DROP FUNCTION durable_wake_v1")
    op.execute("DROP FUNCTION durable_channel_v1")
    op.execute("DROP VIEW live_nodes")
    op.drop_table("nodes")
