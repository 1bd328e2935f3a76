"""SQL for people: the object_history view, comments on presence, and the indexes they need

object_history is the log as people read it: one row per event, with the object's binding
and name, the socket the event concerns and that socket's attachment (who the client is),
and an inbound frame's text decoded. It is a plain view over events, objects and
websockets, so the planner sees through it: a filter on object_id reaches the events
primary key (object_id, seq); a filter on binding and name finds the objects first and
then their events by that key, never scanning events; and a query that reads nothing of
the socket's row leaves websockets out altogether (the join is on its primary key, so the
planner may remove it).

The presence view keeps its columns (so nothing that reads it breaks); its columns get
comments, as the tables' have.

Two indexes, each for a question people ask (the README's queries, which tests EXPLAIN at a
million events):

- objects (binding, name): an object is named by its binding and name (`CHAT/lobby`), and
  every query that starts from a name scanned the catalog without it. Neither column ever
  changes, so the frequent updates of last_seq stay HOT.
- websockets (object_id, coalesce(closed_at, 'infinity')): who was in a room at a time T
  is the sockets with connected_at <= T < closed_at, an open one counting as closing at
  infinity. Asked about the recent past (the usual audit), nearly all of a busy room's
  sockets had connected before T, so an index on connected_at would read nearly its whole
  history; those that ended after T (or are open) are few, and this index finds them in one
  range. Both cases in one expression, rather than "closed_at IS NULL OR closed_at > T":
  the planner cannot read an OR from one index range, and through a join on the room's name
  it expects a few sockets per room and scans them all. closed_at changes once, when the
  socket ends, and that update was never HOT (closed_at is in the predicate of
  ix_websockets_open).

Left out on purpose: an index on websockets.last_activity_at (idle clients). That column
changes with every message, and indexing it would turn each of those updates from an
in-place (HOT) one into a new row version with new index entries; the idle query reads the
open sockets through ix_websockets_open instead, which is bounded by how many clients are
connected, not by history.

Revision ID: 3c9e51d7a2b4
Revises: dd9f2007840a
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "3c9e51d7a2b4"
down_revision: str | None = "dd9f2007840a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One statement per op.execute: the migrations run over asyncpg, which prepares each one.
TEXT_FUNCTION = r"""
-- The text of an encoded string (service/events/values.py): a JSON string is itself; a
-- string that held NUL, which text cannot, is {"$str": base64 of its UTF-8}, decoded here
-- with each NUL shown as U+FFFD. To find the NUL bytes on byte boundaries, the hex form
-- gets a space before every byte ("00" then only matches a whole byte).
CREATE FUNCTION durable_text_v1(encoded json) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE json_typeof(encoded)
       WHEN 'string' THEN encoded #>> '{}'
       WHEN 'object' THEN convert_from(decode(replace(replace(
            regexp_replace(encode(decode(encoded ->> '$str', 'base64'), 'hex'), '(..)', ' \1', 'g'),
            ' 00', ' efbfbd'), ' ', ''), 'hex'), 'UTF8')
       END
$$
"""

VIEW = """
CREATE VIEW object_history AS
SELECT e.position, e.object_id, o.binding, o.name, e.seq, e.type, e.recorded_at,
       e.data ->> 'socket_id' AS socket_id,
       w.attachment,
       CASE WHEN e.type = 'message_received' THEN durable_text_v1(e.data -> 'text') END AS text,
       e.data
  FROM objects AS o
  JOIN events AS e ON e.object_id = o.object_id
  -- On websockets' primary key: at most one row, so a query that reads no column of it
  -- does not join it at all.
  LEFT JOIN websockets AS w
         ON w.object_id = e.object_id AND w.socket_id = e.data ->> 'socket_id'
"""

# What \d+ shows SQL users. A long comment is split into literals on separate lines, which
# SQL joins into one string.
COMMENTS = (
    """
    COMMENT ON FUNCTION durable_text_v1 IS
    'The text of an encoded string in event data: {"$str": base64} decoded, NUL shown as U+FFFD'
    """,
    """
    COMMENT ON VIEW object_history IS
    'Every event as people read it: one row per event, with the object''s binding and name, '
    'the socket''s attachment and an inbound frame''s text. Filter by binding and name (or '
    'object_id) and order by seq.'
    """,
    "COMMENT ON COLUMN object_history.position IS 'Global order of events (commit order)'",
    "COMMENT ON COLUMN object_history.object_id IS '64 lowercase hex characters'",
    "COMMENT ON COLUMN object_history.binding IS 'Binding (class) name of the object, e.g. CHAT'",
    """
    COMMENT ON COLUMN object_history.name IS
    'The object''s name (given to id_from_name), e.g. lobby; NULL for unique ids'
    """,
    "COMMENT ON COLUMN object_history.seq IS 'Gapless per object, from 1: the object''s order'",
    "COMMENT ON COLUMN object_history.type IS 'Event type, e.g. message_received'",
    """
    COMMENT ON COLUMN object_history.recorded_at IS
    'When the event was committed (events of one flush share it)'
    """,
    """
    COMMENT ON COLUMN object_history.socket_id IS
    'The socket the event concerns (accepted, attachment, message, close, error); else NULL'
    """,
    """
    COMMENT ON COLUMN object_history.attachment IS
    'The socket''s latest attachment (from websockets), e.g. who sent a message; it outlives '
    'the socket''s close. NULL for events without a socket'
    """,
    """
    COMMENT ON COLUMN object_history.text IS
    'message_received: the frame''s text, decoded (NUL shown as U+FFFD). NULL for a binary '
    'frame, whose bytes are base64 in data->>''binary'', and for other events'
    """,
    "COMMENT ON COLUMN object_history.data IS 'The event''s fields, as stored in events.data'",
    "COMMENT ON COLUMN presence.object_id IS 'The object the socket is connected to'",
    "COMMENT ON COLUMN presence.binding IS 'Binding (class) name of the object, e.g. CHAT'",
    """
    COMMENT ON COLUMN presence.name IS
    'The object''s name (given to id_from_name), e.g. lobby; NULL for unique ids'
    """,
    "COMMENT ON COLUMN presence.socket_id IS 'The socket, unique within its object'",
    "COMMENT ON COLUMN presence.tags IS 'Hibernation tags, e.g. user:ada (GIN-indexed)'",
    "COMMENT ON COLUMN presence.attachment IS 'Latest serialize_attachment value'",
    "COMMENT ON COLUMN presence.connected_at IS 'When the socket was accepted'",
    """
    COMMENT ON COLUMN presence.last_activity_at IS
    'When the object last received a frame from it or set its attachment (an auto-response '
    'does not count)'
    """,
    "COMMENT ON COLUMN presence.node IS 'Node whose gateway holds the connection'",
)

INDEXES = (
    # See the module docstring for why each exists.
    "CREATE INDEX ix_objects_binding_name ON objects (binding, name)",
    """
    CREATE INDEX ix_websockets_object_id_closed_at
        ON websockets (object_id, coalesce(closed_at, 'infinity'::timestamptz))
    """,
)

# Only what upgrade added: presence keeps its columns and loses their comments.
DROP = (
    "COMMENT ON COLUMN presence.object_id IS NULL",
    "COMMENT ON COLUMN presence.binding IS NULL",
    "COMMENT ON COLUMN presence.name IS NULL",
    "COMMENT ON COLUMN presence.socket_id IS NULL",
    "COMMENT ON COLUMN presence.tags IS NULL",
    "COMMENT ON COLUMN presence.attachment IS NULL",
    "COMMENT ON COLUMN presence.connected_at IS NULL",
    "COMMENT ON COLUMN presence.last_activity_at IS NULL",
    "COMMENT ON COLUMN presence.node IS NULL",
    "DROP VIEW object_history",
    "DROP FUNCTION durable_text_v1",
    "DROP INDEX ix_websockets_object_id_closed_at",
    "DROP INDEX ix_objects_binding_name",
)


def upgrade() -> None:
    for statement in (*INDEXES, TEXT_FUNCTION, VIEW, *COMMENTS):
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP:
        op.execute(statement)
