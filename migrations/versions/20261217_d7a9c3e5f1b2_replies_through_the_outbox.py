"""Replies through the outbox: requests and calls routed to another node are answered

A request, WebSocket upgrade or RPC call for an object another live node owns is written to
the inbox with the node to reply to; the owner runs it, and its answer goes back through the
outbox, written by the flush that commits the turn (so nothing is answered before the
events behind it are durable), in turn order with the frames that turn sent. Two new kinds
of outbox rows:

- ``reply``: the answer to a request or call, addressed to the node that asked (``node``
  given in the row, not looked up); ``request_id`` matches it to the waiting request, and
  ``reply`` holds the status and headers (the body in ``data``), or the call's outcome. A
  reply that opens a WebSocket names the socket in ``socket_id``: the flush records the
  asking node as the socket's holder in ``websockets`` first, so the frames of the same
  flush and of later ones are addressed there, after the reply.
- ``resume``: a socket accepted with ``resume_after`` elsewhere: the holding node reads the
  messages it missed from the log (the range is in ``reply``) and sends them before the
  socket's later rows.

``durable_route_v2`` takes the rows as ``durable_outbox_v2`` records (the v1 fields, plus
the destination node, the request id and the reply); ``durable_route_v1`` and its type stay
for nodes of the previous version during a rolling deploy.

Revision ID: d7a9c3e5f1b2
Revises: c4e8a1b2d3f5
Create Date: 2026-12-17 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d7a9c3e5f1b2"
down_revision: str | None = "c4e8a1b2d3f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row of a flush's outbox, as the service's flush_records.outbox makes it.
OUTBOX_TYPE = """
CREATE TYPE durable_outbox_v2 AS (
    node text,
    object_id text,
    socket_id text,
    kind text,
    text text,
    data bytea,
    close_code integer,
    close_reason text,
    request_id text,
    reply jsonb
)
"""

# durable_route_v1 with a destination per row when the row names one (a reply), and the
# holder of a socket opened by a reply recorded before any row is addressed.
ROUTE = """
CREATE FUNCTION durable_route_v2(writer text, woken_ids text[], frames durable_outbox_v2[])
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

        -- In the order given (each socket's in turn order, a reply before the frames its
        -- turn sent). The flush holds the positions lock (durable_flush_v1 took it first),
        -- so positions follow commit order. A row goes to the node it names, or else to the
        -- node holding its socket; none to this node, to a closed socket, or to a node that
        -- has stopped or was swept: nobody would deliver it.
        WITH addressed AS (
            SELECT coalesce(f.node, w.node) AS addressee, f.node IS NOT NULL AS named,
                   w.closed_at, f.ordinality, f.object_id, f.socket_id, f.kind, f.text, f.data,
                   f.close_code, f.close_reason, f.request_id, f.reply
              FROM unnest(frames) WITH ORDINALITY AS f
              LEFT JOIN websockets AS w
                ON f.node IS NULL AND w.object_id = f.object_id AND w.socket_id = f.socket_id
        ), added AS (
            INSERT INTO outbox (node, object_id, socket_id, kind, text, data, close_code,
                                close_reason, request_id, reply)
            SELECT a.addressee, a.object_id, a.socket_id, a.kind, a.text, a.data, a.close_code,
                   a.close_reason, a.request_id, a.reply
              FROM addressed AS a
              JOIN nodes AS n ON n.node_id = a.addressee
             WHERE a.addressee <> writer AND (a.named OR a.closed_at IS NULL)
               AND n.stopped_at IS NULL AND n.swept_at IS NULL
             ORDER BY a.ordinality
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
    COMMENT ON FUNCTION durable_route_v2 IS
    'Writes a flush''s outbox rows (frames, closes, resumes and replies), records the holder '
    'of a socket a reply opens, and wakes each destination node once'
    """,
    "COMMENT ON COLUMN outbox.kind IS 'text, binary, close, resume or reply'",
    "COMMENT ON COLUMN outbox.node IS 'Node that delivers the row: the one holding the "
    "socket, or the one a reply answers'",
    "COMMENT ON COLUMN outbox.socket_id IS 'The socket the row is for; empty for a reply "
    "that opens none'",
)

PREVIOUS_COMMENTS = (
    "COMMENT ON COLUMN outbox.kind IS 'text, binary or close'",
    "COMMENT ON COLUMN outbox.node IS 'Node whose gateway holds the socket: the one that "
    "delivers the row'",
    "COMMENT ON COLUMN outbox.socket_id IS NULL",
)


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column(
            "request_id",
            sa.Text(),
            nullable=True,
            comment="A reply's request or call id, as the asking node waits for it",
        ),
    )
    op.add_column(
        "outbox",
        sa.Column(
            "reply",
            postgresql.JSONB(),
            nullable=True,
            comment="A reply's status and headers or outcome; a resume's range of the log",
        ),
    )
    for statement in (OUTBOX_TYPE, ROUTE, *COMMENTS):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION durable_route_v2")
    op.execute("DROP TYPE durable_outbox_v2")
    op.execute("DELETE FROM outbox WHERE kind IN ('reply', 'resume')")
    for statement in PREVIOUS_COMMENTS:
        op.execute(statement)
    op.drop_column("outbox", "reply")
    op.drop_column("outbox", "request_id")
