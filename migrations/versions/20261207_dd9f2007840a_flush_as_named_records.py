"""A flush as named records: durable_flush_v1 and one composite type per kind of row

durable_flush took 39 parallel arrays, one per column of each kind of row it writes, so
every name was written out in three places and a row was put together by position.
durable_flush_v1 takes one array per kind of row instead, each of a composite type that
names its fields (mostly after the columns they fill): an event, a socket accepted, an
attachment, a socket touched, a socket closed, an alarm set or removed, a snapshot, an
inbox row consumed or added, and the fenced advance of each object. It writes exactly
what durable_flush wrote, in the same order, under the same positions lock.

The names carry a version so that two versions of the service can run side by side
during a rolling deploy: durable_flush stays, and a node of the previous version keeps
calling it while new nodes call durable_flush_v1. Both take the one positions lock, so
their flushes still commit one at a time in position order. A later migration drops
durable_flush once no node of that version is left; a change to a record type is a new
type and a new function (``_v2``), never an ALTER of these.

Revision ID: dd9f2007840a
Revises: ed77d88a0453
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "dd9f2007840a"
down_revision: str | None = "ed77d88a0453"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The record types, in the order of durable_flush_v1's parameters (one statement each: the
# migrations run over asyncpg, which prepares every statement). The service defines the same
# fields once (service/store/flush_records.py), and a test compares the two.
TYPES = (
    """
    -- One object's fenced advance: from expected_seq to last_seq, if it is still at
    -- expected_seq and still owned under epoch.
    CREATE TYPE durable_flush_advance_v1 AS (
        object_id text,
        expected_seq bigint,
        last_seq bigint,
        epoch bigint
    )
    """,
    """
    -- One row of events (position and recorded_at take their defaults).
    CREATE TYPE durable_flush_event_v1 AS (
        object_id text,
        seq bigint,
        type text,
        version smallint,
        data json
    )
    """,
    """
    -- A socket accepted: its new row of websockets.
    CREATE TYPE durable_flush_accepted_v1 AS (
        object_id text,
        socket_id text,
        tags text[],
        hibernatable boolean,
        url text
    )
    """,
    """
    -- A socket's latest attachment (the last one of the flush).
    CREATE TYPE durable_flush_attachment_v1 AS (
        object_id text,
        socket_id text,
        attachment jsonb
    )
    """,
    """
    -- A socket that received a message: its last_activity_at moves.
    CREATE TYPE durable_flush_touched_v1 AS (
        object_id text,
        socket_id text
    )
    """,
    """
    -- A socket that ended, closed or errored (its first end in the flush).
    CREATE TYPE durable_flush_closed_v1 AS (
        object_id text,
        socket_id text,
        close_code integer,
        close_reason text,
        was_clean boolean
    )
    """,
    """
    -- An object's alarm as the flush leaves it: scheduled_ms (epoch milliseconds), or NULL
    -- when it was deleted.
    CREATE TYPE durable_flush_alarm_v1 AS (
        object_id text,
        scheduled_ms bigint
    )
    """,
    """
    -- A snapshot: an object's folded state after its event seq.
    CREATE TYPE durable_flush_snapshot_v1 AS (
        object_id text,
        seq bigint,
        state json
    )
    """,
    """
    -- An inbox row the flush's events consumed (deleted in the same transaction).
    CREATE TYPE durable_flush_consumed_v1 AS (
        object_id text,
        id bigint
    )
    """,
    """
    -- A new inbox row (its id takes the default; the ids come back in order).
    CREATE TYPE durable_flush_inbox_v1 AS (
        object_id text,
        kind text,
        socket_id text,
        data jsonb
    )
    """,
)

# Parameter names are unlike any column or table, so that PL/pgSQL never mistakes one for
# a variable; every field is read qualified by its row's alias.
CREATE = """
CREATE FUNCTION durable_flush_v1(
    node_id text,
    channel text,
    wake text,
    advances durable_flush_advance_v1[],
    new_events durable_flush_event_v1[],
    accepted_sockets durable_flush_accepted_v1[],
    attachments durable_flush_attachment_v1[],
    touched_sockets durable_flush_touched_v1[],
    closed_sockets durable_flush_closed_v1[],
    alarm_changes durable_flush_alarm_v1[],
    new_snapshots durable_flush_snapshot_v1[],
    consumed_inbox durable_flush_consumed_v1[],
    new_inbox durable_flush_inbox_v1[],
    OUT xid bigint, OUT stale text[], OUT inbox_ids bigint[]
) LANGUAGE plpgsql AS $body$
BEGIN
    -- Identity values are taken before commit: holding this lock from the first insert to
    -- commit makes position order equal commit order, so a tailing reader skips nothing.
    -- It is durable_flush's lock too: flushes of both versions queue on it together.
    PERFORM pg_advisory_xact_lock(7305528449176000001);
    xid := txid_current();
    stale := '{}';
    inbox_ids := '{}';

    -- Optimistic concurrency and fencing in one statement.
    IF cardinality(advances) > 0 THEN
        WITH advanced AS (
            UPDATE objects AS o
               SET last_seq = v.last_seq, updated_at = now()
              FROM unnest(advances) AS v
             WHERE o.object_id = v.object_id
               AND o.last_seq = v.expected_seq
               AND o.owner_epoch = v.epoch
            RETURNING o.object_id
        )
        SELECT coalesce(array_agg(w.object_id), '{}') INTO stale
          FROM unnest(advances) AS w
         WHERE w.object_id NOT IN (SELECT a.object_id FROM advanced AS a);
        IF cardinality(stale) > 0 THEN
            RETURN;  -- the caller rolls back: nothing of this flush is kept
        END IF;
    END IF;

    -- In the order given, which is position order (the caller sends large batches by COPY).
    IF cardinality(new_events) > 0 THEN
        INSERT INTO events (object_id, seq, type, version, data)
        SELECT e.object_id, e.seq, e.type, e.version, e.data
          FROM unnest(new_events) WITH ORDINALITY AS e
         ORDER BY e.ordinality;
    END IF;

    IF cardinality(accepted_sockets) > 0 THEN
        INSERT INTO websockets (object_id, socket_id, tags, hibernatable, url, node)
        SELECT s.object_id, s.socket_id, s.tags, s.hibernatable, s.url, node_id
          FROM unnest(accepted_sockets) AS s
        ON CONFLICT (object_id, socket_id) DO NOTHING;
    END IF;

    IF cardinality(attachments) > 0 THEN
        UPDATE websockets AS w
           SET attachment = a.attachment, last_activity_at = now()
          FROM unnest(attachments) AS a
         WHERE w.object_id = a.object_id AND w.socket_id = a.socket_id;
    END IF;

    IF cardinality(touched_sockets) > 0 THEN
        UPDATE websockets AS w
           SET last_activity_at = now()
          FROM unnest(touched_sockets) AS t
         WHERE w.object_id = t.object_id AND w.socket_id = t.socket_id;
    END IF;

    -- A socket ends once: a row already closed keeps its first end.
    IF cardinality(closed_sockets) > 0 THEN
        UPDATE websockets AS w
           SET closed_at = now(), close_code = c.close_code, close_reason = c.close_reason,
               was_clean = c.was_clean, last_activity_at = now()
          FROM unnest(closed_sockets) AS c
         WHERE w.object_id = c.object_id AND w.socket_id = c.socket_id
           AND w.closed_at IS NULL;
    END IF;

    -- An object appears once in alarm_changes: its alarm as the flush leaves it.
    IF cardinality(alarm_changes) > 0 THEN
        DELETE FROM alarms AS d
         USING unnest(alarm_changes) AS a
         WHERE d.object_id = a.object_id AND a.scheduled_ms IS NULL;
        INSERT INTO alarms (object_id, scheduled_at, retry_count)
        SELECT a.object_id, to_timestamp(a.scheduled_ms / 1000.0), 0
          FROM unnest(alarm_changes) AS a
         WHERE a.scheduled_ms IS NOT NULL
        ON CONFLICT (object_id) DO UPDATE
           SET scheduled_at = EXCLUDED.scheduled_at, retry_count = 0;
    END IF;

    IF cardinality(new_snapshots) > 0 THEN
        INSERT INTO snapshots (object_id, seq, state)
        SELECT s.object_id, s.seq, s.state
          FROM unnest(new_snapshots) AS s
        ON CONFLICT (object_id, seq) DO NOTHING;
        -- Keep the two newest snapshots of each object that just got one.
        DELETE FROM snapshots AS s
         WHERE s.object_id = ANY(ARRAY(SELECT n.object_id FROM unnest(new_snapshots) AS n))
           AND s.seq < (SELECT k.seq FROM snapshots AS k
                         WHERE k.object_id = s.object_id
                         ORDER BY k.seq DESC OFFSET 1 LIMIT 1);
    END IF;

    IF cardinality(consumed_inbox) > 0 THEN
        DELETE FROM inbox AS i
         USING unnest(consumed_inbox) AS d
         WHERE i.object_id = d.object_id AND i.id = d.id;
    END IF;

    IF cardinality(new_inbox) > 0 THEN
        WITH added AS (
            INSERT INTO inbox (object_id, kind, socket_id, data)
            SELECT i.object_id, i.kind, i.socket_id, i.data
              FROM unnest(new_inbox) WITH ORDINALITY AS i
             ORDER BY i.ordinality
            RETURNING id
        )
        SELECT array_agg(a.id ORDER BY a.id) INTO inbox_ids FROM added AS a;
    END IF;

    -- At most one NOTIFY per flush: it takes a lock at commit that serialises committers.
    IF wake IS NOT NULL THEN
        PERFORM pg_notify(channel, wake);
    END IF;
END
$body$
"""

# What \df+ and \dT+ show SQL users.
COMMENTS = (
    """
    COMMENT ON FUNCTION durable_flush_v1 IS
    'Writes one group-commit flush of a node: events, projections, inbox, one NOTIFY'
    """,
    """
    COMMENT ON TYPE durable_flush_advance_v1 IS
    'durable_flush_v1: an object advanced from expected_seq to last_seq under owner epoch'
    """,
    "COMMENT ON TYPE durable_flush_event_v1 IS 'durable_flush_v1: a row of events'",
    "COMMENT ON TYPE durable_flush_accepted_v1 IS 'durable_flush_v1: a socket accepted'",
    """
    COMMENT ON TYPE durable_flush_attachment_v1 IS
    'durable_flush_v1: a socket''s latest attachment'
    """,
    """
    COMMENT ON TYPE durable_flush_touched_v1 IS
    'durable_flush_v1: a socket that received a message'
    """,
    "COMMENT ON TYPE durable_flush_closed_v1 IS 'durable_flush_v1: a socket that ended'",
    """
    COMMENT ON TYPE durable_flush_alarm_v1 IS
    'durable_flush_v1: an object''s alarm in epoch milliseconds, NULL when deleted'
    """,
    "COMMENT ON TYPE durable_flush_snapshot_v1 IS 'durable_flush_v1: a snapshot of an object'",
    "COMMENT ON TYPE durable_flush_consumed_v1 IS 'durable_flush_v1: an inbox row consumed'",
    "COMMENT ON TYPE durable_flush_inbox_v1 IS 'durable_flush_v1: a new inbox row'",
)

# Only what upgrade added: durable_flush, of the revision before, stays.
DROP = (
    "DROP FUNCTION durable_flush_v1",
    """
    DROP TYPE durable_flush_advance_v1, durable_flush_event_v1, durable_flush_accepted_v1,
              durable_flush_attachment_v1, durable_flush_touched_v1, durable_flush_closed_v1,
              durable_flush_alarm_v1, durable_flush_snapshot_v1, durable_flush_consumed_v1,
              durable_flush_inbox_v1
    """,
)


def upgrade() -> None:
    for statement in (*TYPES, CREATE, *COMMENTS):
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP:
        op.execute(statement)
