"""A flush in one statement: the durable_flush function

Under load a node's event loop takes a few milliseconds to come back to each answer from
the database, so a flush of seven round trips (lock, advance, COPY in two, presence,
inbox, NOTIFY) cost seven loop turns. durable_flush does all of a flush's writes in one
call, in the order they were made one by one: the positions lock, the fenced advance of
each object (returning the stale ones, having written nothing, on a conflict), the events
(unless the caller sends them by COPY, as it does for large batches), the presence and
alarm projections, snapshots, the consumed and new inbox rows and the one NOTIFY.

Revision ID: ed77d88a0453
Revises: 8e4d2a6c1f03
Create Date: 2026-11-26 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "ed77d88a0453"
down_revision: str | None = "8e4d2a6c1f03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Parameter names are plural (or otherwise unlike any column) so that PL/pgSQL never
# mistakes a column for a variable.
CREATE = """
CREATE FUNCTION durable_flush(
    node_id text,
    channel text,
    wake text,
    object_ids text[], expected_seqs bigint[], last_seqs bigint[], epochs bigint[],
    event_objects text[], event_seqs bigint[], event_types text[], event_versions smallint[],
    event_data text[],
    accepted_objects text[], accepted_sockets text[], accepted_tags text[],
    accepted_hibernatables boolean[], accepted_urls text[],
    attached_objects text[], attached_sockets text[], attachments text[],
    touched_objects text[], touched_sockets text[],
    closed_objects text[], closed_sockets text[], closed_codes integer[],
    closed_reasons text[], closed_cleans boolean[],
    alarm_objects text[], alarm_ms bigint[], unalarmed_objects text[],
    snapshot_objects text[], snapshot_seqs bigint[], snapshot_states text[],
    consumed_objects text[], consumed_ids bigint[],
    inbox_objects text[], inbox_kinds text[], inbox_sockets text[], inbox_data text[],
    OUT xid bigint, OUT stale text[], OUT inbox_ids bigint[]
) LANGUAGE plpgsql AS $body$
BEGIN
    -- Identity values are taken before commit: holding this lock from the first insert to
    -- commit makes position order equal commit order, so a tailing reader skips nothing.
    PERFORM pg_advisory_xact_lock(7305528449176000001);
    xid := txid_current();
    stale := '{}';
    inbox_ids := '{}';

    -- Optimistic concurrency and fencing in one statement.
    IF cardinality(object_ids) > 0 THEN
        WITH advanced AS (
            UPDATE objects AS o
               SET last_seq = v.last_seq, updated_at = now()
              FROM unnest(object_ids, expected_seqs, last_seqs, epochs)
                   AS v(object_id, expected_seq, last_seq, epoch)
             WHERE o.object_id = v.object_id
               AND o.last_seq = v.expected_seq
               AND o.owner_epoch = v.epoch
            RETURNING o.object_id
        )
        SELECT coalesce(array_agg(w.object_id), '{}') INTO stale
          FROM unnest(object_ids) AS w(object_id)
         WHERE w.object_id NOT IN (SELECT a.object_id FROM advanced AS a);
        IF cardinality(stale) > 0 THEN
            RETURN;  -- the caller rolls back: nothing of this flush is kept
        END IF;
    END IF;

    IF cardinality(event_objects) > 0 THEN
        INSERT INTO events (object_id, seq, type, version, data)
        SELECT e.object_id, e.seq, e.type, e.version, e.data::json
          FROM unnest(event_objects, event_seqs, event_types, event_versions, event_data)
               WITH ORDINALITY AS e(object_id, seq, type, version, data, n)
         ORDER BY e.n;
    END IF;

    IF cardinality(accepted_objects) > 0 THEN
        INSERT INTO websockets (object_id, socket_id, tags, hibernatable, url, node)
        SELECT s.object_id, s.socket_id,
               ARRAY(SELECT jsonb_array_elements_text(s.tags::jsonb)),
               s.hibernatable, s.url, node_id
          FROM unnest(accepted_objects, accepted_sockets, accepted_tags,
                      accepted_hibernatables, accepted_urls)
               AS s(object_id, socket_id, tags, hibernatable, url)
        ON CONFLICT (object_id, socket_id) DO NOTHING;
    END IF;

    IF cardinality(attached_objects) > 0 THEN
        UPDATE websockets AS w
           SET attachment = a.attachment::jsonb, last_activity_at = now()
          FROM unnest(attached_objects, attached_sockets, attachments)
               AS a(object_id, socket_id, attachment)
         WHERE w.object_id = a.object_id AND w.socket_id = a.socket_id;
    END IF;

    IF cardinality(touched_objects) > 0 THEN
        UPDATE websockets AS w
           SET last_activity_at = now()
          FROM unnest(touched_objects, touched_sockets) AS t(object_id, socket_id)
         WHERE w.object_id = t.object_id AND w.socket_id = t.socket_id;
    END IF;

    IF cardinality(closed_objects) > 0 THEN
        UPDATE websockets AS w
           SET closed_at = now(), close_code = c.code, close_reason = c.reason,
               was_clean = c.clean, last_activity_at = now()
          FROM unnest(closed_objects, closed_sockets, closed_codes, closed_reasons,
                      closed_cleans)
               AS c(object_id, socket_id, code, reason, clean)
         WHERE w.object_id = c.object_id AND w.socket_id = c.socket_id
           AND w.closed_at IS NULL;
    END IF;

    IF cardinality(unalarmed_objects) > 0 THEN
        DELETE FROM alarms AS d WHERE d.object_id = ANY(unalarmed_objects);
    END IF;
    IF cardinality(alarm_objects) > 0 THEN
        INSERT INTO alarms (object_id, scheduled_at, retry_count)
        SELECT a.object_id, to_timestamp(a.ms / 1000.0), 0
          FROM unnest(alarm_objects, alarm_ms) AS a(object_id, ms)
        ON CONFLICT (object_id) DO UPDATE
           SET scheduled_at = EXCLUDED.scheduled_at, retry_count = 0;
    END IF;

    IF cardinality(snapshot_objects) > 0 THEN
        INSERT INTO snapshots (object_id, seq, state)
        SELECT s.object_id, s.seq, s.state::json
          FROM unnest(snapshot_objects, snapshot_seqs, snapshot_states)
               AS s(object_id, seq, state)
        ON CONFLICT (object_id, seq) DO NOTHING;
        -- Keep the two newest snapshots of each object that just got one.
        DELETE FROM snapshots AS s
         WHERE s.object_id = ANY(snapshot_objects)
           AND s.seq < (SELECT k.seq FROM snapshots AS k
                         WHERE k.object_id = s.object_id
                         ORDER BY k.seq DESC OFFSET 1 LIMIT 1);
    END IF;

    IF cardinality(consumed_objects) > 0 THEN
        DELETE FROM inbox AS i
         USING unnest(consumed_objects, consumed_ids) AS d(object_id, id)
         WHERE i.object_id = d.object_id AND i.id = d.id;
    END IF;

    IF cardinality(inbox_objects) > 0 THEN
        WITH added AS (
            INSERT INTO inbox (object_id, kind, socket_id, data)
            SELECT i.object_id, i.kind, i.socket_id, i.data::jsonb
              FROM unnest(inbox_objects, inbox_kinds, inbox_sockets, inbox_data)
                   WITH ORDINALITY AS i(object_id, kind, socket_id, data, n)
             ORDER BY i.n
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

COMMENT = """
COMMENT ON FUNCTION durable_flush IS
'Writes one group-commit flush of a node: events, projections, inbox, one NOTIFY'
"""


def upgrade() -> None:
    op.execute(CREATE)
    op.execute(COMMENT)


def downgrade() -> None:
    op.execute("DROP FUNCTION durable_flush")
