"""Sparse snapshots kept for good: the past of a long log replays from near the point

durable_flush_v1 kept only the two newest snapshots of an object, so the state at an old
point (the history's ``state --at`` and ``diff``: the newest snapshot at or before the
point, then the events after it) folded from seq 1: at the middle of a 1,000,000-event
log, 500,000 events. It now also keeps, for good, the first snapshot at or after each
multiple of 10,000 seqs (``sparse_span``, from 10,000 on; before it, a fold from seq 1
is short enough). A node snapshots every ``snapshot_every`` events, on the turn that crosses a
multiple of it, so that snapshot lands a turn or so past the multiple, not on it: the rule
keeps the first of each span rather than looking for an exact seq. A point anywhere then
folds at most about 10,000 + snapshot_every events (about 0.3 s at the ~30,000
events a second a fold runs), at the cost of one snapshot row per 10,000 events.

Only the pruning DELETE changes. The function is replaced in place (CREATE OR REPLACE,
same parameters and record types), so nodes of the previous version, which call
durable_flush_v1 too, keep flushing through a rolling deploy and prune the new way at once.
Snapshots pruned before this revision are gone: an object's log gets its sparse snapshots
as it grows past each span. durable_flush (kept for nodes of the version before
durable_flush_v1) still prunes two deep and is left as it is: it is dropped once no such
node is left. Downgrade puts the previous body back (sparse snapshots already kept stay,
until the next snapshot of their object prunes them).

Revision ID: 7b3e0c94d1f6
Revises: a15b3d0f7906
Create Date: 2026-12-15 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "7b3e0c94d1f6"
down_revision: str | None = "a15b3d0f7906"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# durable_flush_v1 as revision dd9f2007840a created it (here with OR REPLACE): downgrade
# puts it back. The new body below is this one with its pruning changed.
PREVIOUS = """
CREATE OR REPLACE FUNCTION durable_flush_v1(
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

_PRUNE_BEFORE = """
        -- Keep the two newest snapshots of each object that just got one.
        DELETE FROM snapshots AS s
         WHERE s.object_id = ANY(ARRAY(SELECT n.object_id FROM unnest(new_snapshots) AS n))
           AND s.seq < (SELECT k.seq FROM snapshots AS k
                         WHERE k.object_id = s.object_id
                         ORDER BY k.seq DESC OFFSET 1 LIMIT 1);
"""

# The span is this module's constant, an integer written into the function's text.
_PRUNE_AFTER = """
        -- Keep the two newest snapshots of each object that just got one, and for good the
        -- first snapshot of each span of sparse_span seqs from sparse_span on, so that the
        -- state at an old point folds from near it rather than from seq 1.
        DELETE FROM snapshots AS s
         WHERE s.object_id = ANY(ARRAY(SELECT n.object_id FROM unnest(new_snapshots) AS n))
           AND s.seq < (SELECT k.seq FROM snapshots AS k
                         WHERE k.object_id = s.object_id
                         ORDER BY k.seq DESC OFFSET 1 LIMIT 1)
           AND (s.seq < sparse_span
                OR EXISTS (SELECT FROM snapshots AS f
                            WHERE f.object_id = s.object_id
                              AND f.seq >= s.seq - s.seq % sparse_span AND f.seq < s.seq));
"""

_BEGIN_BEFORE = """ AS $body$
BEGIN
"""

_BEGIN_AFTER = """ AS $body$
DECLARE
    -- Seqs between the snapshots kept for good: a point anywhere in a log folds at most
    -- about this many events (plus the node's snapshot_every; 10,000 fold in about 0.3 s),
    -- and a log keeps one snapshot row per this many events.
    sparse_span CONSTANT bigint := 10000;
BEGIN
"""

assert PREVIOUS.count(_PRUNE_BEFORE) == 1 and PREVIOUS.count(_BEGIN_BEFORE) == 1
REPLACE = PREVIOUS.replace(_PRUNE_BEFORE, _PRUNE_AFTER).replace(_BEGIN_BEFORE, _BEGIN_AFTER)


def upgrade() -> None:
    op.execute(REPLACE)


def downgrade() -> None:
    op.execute(PREVIOUS)
