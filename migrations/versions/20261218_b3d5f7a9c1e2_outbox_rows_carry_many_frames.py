"""Outbox rows that carry many frames: one row per destination node per flush

A flush wrote one outbox row per frame, and the holding node deleted each after delivering
it: with every message of a room crossing the database, inserting and deleting those rows
was most of what the cross-node traffic cost PostgreSQL. ``durable_route_v3`` writes, for a
destination node that reads them, one row per flush holding all of the flush's rows for that
node in ``frames``, in turn order (kind ``frames``); a node announces that it reads them in
``nodes.reads_frames``. A destination that does not (a node of the previous version, during
a rolling deploy) still gets one row per frame. ``durable_route_v2`` stays for the nodes of
the previous version.

Revision ID: b3d5f7a9c1e2
Revises: d7a9c3e5f1b2
Create Date: 2026-12-18 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3d5f7a9c1e2"
down_revision: str | None = "d7a9c3e5f1b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# durable_route_v2, with one row per flush for each destination that reads ``frames``.
ROUTE = """
CREATE FUNCTION durable_route_v3(writer text, woken_ids text[], frames durable_outbox_v2[])
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
        -- A socket accepted for a request routed from another node is held there: its row
        -- (written by durable_flush_v1 in this statement, with the writer as its node)
        -- names that node before this flush's frames for it are addressed.
        UPDATE websockets AS w
           SET node = f.node
          FROM unnest(frames) AS f
         WHERE f.kind = 'reply' AND f.node IS NOT NULL AND f.socket_id <> ''
           AND w.object_id = f.object_id AND w.socket_id = f.socket_id;

        -- Each row goes to the node it names, or else to the node holding its socket; none
        -- to this node, to a closed socket, or to a node that has stopped or was swept:
        -- nobody would deliver it. A node that reads ``frames`` gets them all in one row,
        -- in the order given (each socket's in turn order, a reply before the frames its
        -- turn sent); another gets a row per frame, in that order. The flush holds the
        -- positions lock (durable_flush_v1 took it first), so positions follow commits.
        WITH addressed AS (
            SELECT i, frames[i] AS frame,
                   coalesce((frames[i]).node, w.node) AS addressee,
                   (frames[i]).node IS NOT NULL AS named, w.closed_at
              FROM generate_subscripts(frames, 1) AS i
              LEFT JOIN websockets AS w
                ON (frames[i]).node IS NULL AND w.object_id = (frames[i]).object_id
               AND w.socket_id = (frames[i]).socket_id
        ), kept AS (
            SELECT a.i, a.frame, a.addressee, n.reads_frames
              FROM addressed AS a
              JOIN nodes AS n ON n.node_id = a.addressee
             WHERE a.addressee <> writer AND (a.named OR a.closed_at IS NULL)
               AND n.stopped_at IS NULL AND n.swept_at IS NULL
        ), added AS (
            INSERT INTO outbox (node, object_id, socket_id, kind, text, data, close_code,
                                close_reason, request_id, reply, frames)
            SELECT r.addressee, r.object_id, r.socket_id, r.kind, r.text, r.data,
                   r.close_code, r.close_reason, r.request_id, r.reply, r.frames
              FROM (SELECT k.i, k.addressee, (k.frame).object_id, (k.frame).socket_id,
                           (k.frame).kind, (k.frame).text, (k.frame).data,
                           (k.frame).close_code, (k.frame).close_reason,
                           (k.frame).request_id, (k.frame).reply,
                           NULL::durable_outbox_v2[] AS frames
                      FROM kept AS k
                     WHERE NOT k.reads_frames
                    UNION ALL
                    SELECT min(k.i), k.addressee, '', '', 'frames', NULL, NULL, NULL, NULL,
                           NULL, NULL, array_agg(k.frame ORDER BY k.i)
                      FROM kept AS k
                     WHERE k.reads_frames
                     GROUP BY k.addressee) AS r
             ORDER BY r.i
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
    COMMENT ON FUNCTION durable_route_v3 IS
    'Writes a flush''s outbox rows (one row holding all of them for a node that reads '
    'frames, else one per frame), records the holder of a socket a reply opens, and wakes '
    'each destination node once'
    """,
    "COMMENT ON COLUMN outbox.kind IS 'text, binary, close, resume, reply, or frames (many "
    "of these in one row)'",
)

PREVIOUS_COMMENTS = ("COMMENT ON COLUMN outbox.kind IS 'text, binary, close, resume or reply'",)


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN frames durable_outbox_v2[]")
    op.execute("COMMENT ON COLUMN outbox.frames IS 'A frames row''s rows, in delivery order'")
    op.add_column(
        "nodes",
        sa.Column(
            "reads_frames",
            sa.Boolean(),
            nullable=False,
            server_default=sa.false(),
            comment="Whether the node reads outbox rows that carry many frames",
        ),
    )
    for statement in (ROUTE, *COMMENTS):
        op.execute(statement)


# A frames row's rows as rows of their own, for the nodes of the previous version: in the
# same order, after every row there (a node reading frames rows has no other rows).
UNPACK = """
INSERT INTO outbox (node, object_id, socket_id, kind, text, data, close_code, close_reason,
                    request_id, reply)
SELECT o.node, f.object_id, f.socket_id, f.kind, f.text, f.data, f.close_code, f.close_reason,
       f.request_id, f.reply
  FROM outbox AS o
 CROSS JOIN LATERAL unnest(o.frames) WITH ORDINALITY
       AS f(node, object_id, socket_id, kind, text, data, close_code, close_reason,
            request_id, reply, n)
 WHERE o.kind = 'frames'
 ORDER BY o.node, o.position, f.n
"""


def downgrade() -> None:
    op.execute("DROP FUNCTION durable_route_v3")
    op.execute(UNPACK)
    op.execute("DELETE FROM outbox WHERE kind = 'frames'")
    for statement in PREVIOUS_COMMENTS:
        op.execute(statement)
    op.drop_column("nodes", "reads_frames")
    op.drop_column("outbox", "frames")
