"""Draining nodes (no new objects for a node on its way out); auto-response pairs in the outbox

A node that begins its hand-over (SIGTERM) sets ``nodes.draining_at`` before it gives its
objects away. It is still live (it holds its lease, finishes the turns in flight, and its
objects are not claimed from it) until its stop (``stopped_at``) or the end of its lease;
a new run of its id clears the mark. Gateways, and hosts handing their own objects over,
choose a host for an object nobody owns among the live hosts that are not draining, so two
hosts leaving together do not hand objects to each other.

``live_nodes`` gains the column, last, so that nodes of the previous version, which read
it by name, read it as before (and go on choosing among every live host).

``outbox.kind`` gets one more value, ``auto_response``: an object's new auto-response pair
for the node holding one of its sockets (``reply`` holds the object and the pair), which
answers that socket's auto-responses itself. Nodes of the previous version ignore such a
row (with a warning), as they ignore any kind they do not know; nodes of this version get it
inside their ``frames`` rows.

Revision ID: a8d0f2b4c6e9
Revises: b3d5f7a9c1e2
Create Date: 2026-12-19 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a8d0f2b4c6e9"
down_revision: str | None = "b3d5f7a9c1e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_NODES = """
CREATE OR REPLACE VIEW live_nodes AS
SELECT n.node_id, n.address, n.role, n.started_at, n.heartbeat_at, n.lease_timeout,
       n.draining_at
  FROM nodes AS n
 WHERE n.stopped_at IS NULL
   AND n.swept_at IS NULL
   AND n.heartbeat_at + n.lease_timeout > now()
"""

# The view as revision a15b3d0f7906 made it (a column cannot be dropped from a view in place).
PREVIOUS_LIVE_NODES = """
CREATE VIEW live_nodes AS
SELECT n.node_id, n.address, n.role, n.started_at, n.heartbeat_at, n.lease_timeout
  FROM nodes AS n
 WHERE n.stopped_at IS NULL
   AND n.swept_at IS NULL
   AND n.heartbeat_at + n.lease_timeout > now()
"""

DRAINING_COMMENT = (
    "When it began handing its objects over (SIGTERM); it is draining until it stops. "
    "NULL while it serves"
)

# Comments of a view's columns go with it when it is dropped: put back on downgrade.
PREVIOUS_COMMENTS = (
    "COMMENT ON VIEW live_nodes IS 'Nodes that may own objects now: running, heartbeat fresh'",
    "COMMENT ON COLUMN live_nodes.node_id IS 'The node''s id (--node-id)'",
    "COMMENT ON COLUMN live_nodes.address IS 'host:port it serves HTTP on'",
    "COMMENT ON COLUMN live_nodes.role IS 'all, gateway (sockets only) or host (objects only)'",
    "COMMENT ON COLUMN live_nodes.started_at IS 'When this run of the node joined'",
    "COMMENT ON COLUMN live_nodes.heartbeat_at IS 'Its last heartbeat'",
    "COMMENT ON COLUMN live_nodes.lease_timeout IS "
    "'How long after its last heartbeat the node counts as dead'",
)


OUTBOX_KIND = (
    "COMMENT ON COLUMN outbox.kind IS 'text, binary, close, resume, reply, auto_response, or "
    "frames (many of these in one row)'"
)
PREVIOUS_OUTBOX_KIND = (
    "COMMENT ON COLUMN outbox.kind IS 'text, binary, close, resume, reply, or frames (many of "
    "these in one row)'"
)


def upgrade() -> None:
    op.add_column(
        "nodes",
        sa.Column(
            "draining_at", sa.DateTime(timezone=True), nullable=True, comment=DRAINING_COMMENT
        ),
    )
    op.execute(LIVE_NODES)
    op.execute(
        "COMMENT ON COLUMN live_nodes.draining_at IS "
        "'When it began handing its objects over; NULL unless it is on its way out'"
    )
    op.execute(OUTBOX_KIND)


def downgrade() -> None:
    op.execute(PREVIOUS_OUTBOX_KIND)
    op.execute("DROP VIEW live_nodes")
    op.execute(PREVIOUS_LIVE_NODES)
    for statement in PREVIOUS_COMMENTS:
        op.execute(statement)
    op.drop_column("nodes", "draining_at")
