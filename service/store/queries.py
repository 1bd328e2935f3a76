"""Hot-path SQL, as module constants with $n parameters (asyncpg), one comment each."""

from __future__ import annotations

# Serialise flushes that assign event positions. Why: identity values are taken before
# commit, so two concurrent flushes could commit out of position order and a reader tailing
# by position would skip the one that commits late. Holding this transaction-scoped lock
# from first insert to commit makes position order equal commit order, on every node.
# Also returns the flush's transaction id (see TRANSACTION_STATUS).
LOCK_POSITIONS = "SELECT pg_advisory_xact_lock(7305528449176000001), txid_current()"

# Advance each object's version if (and only if) both the expected seq and the owner epoch
# still hold: optimistic concurrency and fencing in one statement.
ADVANCE_OBJECTS = """
UPDATE objects AS o
   SET last_seq = v.last_seq, updated_at = now()
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
       AS v(object_id, expected_seq, last_seq, epoch)
 WHERE o.object_id = v.object_id
   AND o.last_seq = v.expected_seq
   AND o.owner_epoch = v.epoch
RETURNING o.object_id
"""

# Columns of ``events`` that a flush writes (with COPY, in append order = position order);
# ``position`` and ``recorded_at`` take their defaults.
EVENT_COLUMNS = ("object_id", "seq", "type", "version", "data")

# Presence: a row per newly accepted socket.
INSERT_SOCKETS = """
INSERT INTO websockets (object_id, socket_id, tags, hibernatable, url, node)
SELECT s.object_id, s.socket_id, ARRAY(SELECT jsonb_array_elements_text(s.tags::jsonb)),
       s.hibernatable, s.url, $6
  FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[])
       AS s(object_id, socket_id, tags, hibernatable, url)
ON CONFLICT (object_id, socket_id) DO NOTHING
"""

# Presence: the newest attachment of each socket.
UPDATE_ATTACHMENTS = """
UPDATE websockets AS w
   SET attachment = a.attachment::jsonb, last_activity_at = now()
  FROM unnest($1::text[], $2::text[], $3::text[]) AS a(object_id, socket_id, attachment)
 WHERE w.object_id = a.object_id AND w.socket_id = a.socket_id
"""

# Presence: sockets that received a message in this batch.
TOUCH_SOCKETS = """
UPDATE websockets AS w
   SET last_activity_at = now()
  FROM unnest($1::text[], $2::text[]) AS t(object_id, socket_id)
 WHERE w.object_id = t.object_id AND w.socket_id = t.socket_id
"""

# Presence: sockets that ended, with how they ended.
CLOSE_SOCKETS = """
UPDATE websockets AS w
   SET closed_at = now(), close_code = c.code, close_reason = c.reason,
       was_clean = c.was_clean, last_activity_at = now()
  FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bool[])
       AS c(object_id, socket_id, code, reason, was_clean)
 WHERE w.object_id = c.object_id AND w.socket_id = c.socket_id AND w.closed_at IS NULL
"""

# Alarms: set (or replace) the one alarm of each object.
UPSERT_ALARMS = """
INSERT INTO alarms (object_id, scheduled_at, retry_count)
SELECT object_id, to_timestamp(ms / 1000.0), 0
  FROM unnest($1::text[], $2::bigint[]) AS a(object_id, ms)
ON CONFLICT (object_id) DO UPDATE
   SET scheduled_at = EXCLUDED.scheduled_at, retry_count = 0
"""

# Alarms: remove the alarm of each object.
DELETE_ALARMS = "DELETE FROM alarms WHERE object_id = ANY($1::text[])"

# Snapshots taken in this batch.
INSERT_SNAPSHOTS = """
INSERT INTO snapshots (object_id, seq, state)
SELECT object_id, seq, state::json
  FROM unnest($1::text[], $2::bigint[], $3::text[]) AS s(object_id, seq, state)
ON CONFLICT (object_id, seq) DO NOTHING
"""

# Keep the two newest snapshots of each object that just got one; older ones are redundant
# (replay from seq 0 still reaches any point in history).
PRUNE_SNAPSHOTS = """
DELETE FROM snapshots AS s
 WHERE s.object_id = ANY($1::text[])
   AND s.seq < (SELECT k.seq FROM snapshots AS k
                 WHERE k.object_id = s.object_id
                 ORDER BY k.seq DESC OFFSET 1 LIMIT 1)
"""

# Inbox rows consumed by the events of this batch.
DELETE_INBOX = """
DELETE FROM inbox AS i
 USING unnest($1::text[], $2::bigint[]) AS d(object_id, id)
 WHERE i.object_id = d.object_id AND i.id = d.id
"""

# New inbox rows, in array order; ids come back ascending in that order.
INSERT_INBOX = """
INSERT INTO inbox (object_id, kind, socket_id, data)
SELECT object_id, kind, socket_id, data::jsonb
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
       AS i(object_id, kind, socket_id, data, n)
 ORDER BY n
RETURNING id
"""

# One notification per flush, carrying object ids only; also returns the flush's
# transaction id (see TRANSACTION_STATUS).
NOTIFY = "SELECT pg_notify($1, $2), txid_current()"

# Whether a flush whose COMMIT got no answer (the link broke) committed after all:
# 'committed', 'aborted' or 'in progress' (its backend has not finished yet).
TRANSACTION_STATUS = "SELECT txid_status($1)"

# Claim an object for this node (creating its catalog row), raising the fencing epoch.
CLAIM_OBJECT = """
INSERT INTO objects (object_id, binding, name, owner_node, owner_epoch)
VALUES ($1, $2, $3, $4, 1)
ON CONFLICT (object_id) DO UPDATE
   SET owner_node = EXCLUDED.owner_node,
       owner_epoch = objects.owner_epoch + 1,
       name = COALESCE(objects.name, EXCLUDED.name),
       updated_at = now()
RETURNING binding, name, owner_epoch, last_seq
"""

# Claim an object that must exist already (woken by its inbox).
CLAIM_EXISTING = """
UPDATE objects
   SET owner_node = $2, owner_epoch = owner_epoch + 1, updated_at = now()
 WHERE object_id = $1
RETURNING binding, name, owner_epoch, last_seq
"""

# Give an object up when it hibernates, unless someone else claimed it meanwhile.
RELEASE_OBJECT = """
UPDATE objects SET owner_node = NULL, updated_at = now()
 WHERE object_id = $1 AND owner_epoch = $2
"""

# The newest snapshot of an object.
LATEST_SNAPSHOT = """
SELECT seq, state FROM snapshots WHERE object_id = $1 ORDER BY seq DESC LIMIT 1
"""

# Events of an object after a seq, in order (safe to read by seq: per-object order is
# decided by the expected-version check, not by commit timing).
EVENTS_AFTER = """
SELECT type, version, data FROM events WHERE object_id = $1 AND seq > $2 ORDER BY seq
"""

# One page of an object's events in a seq range: a long log is read page by page, each a
# short statement (a wake never outlives the command timeout, nor holds the whole log).
EVENTS_PAGE = """
SELECT seq, type, version, data FROM events
 WHERE object_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4
"""

# The newest snapshot at or before a seq.
SNAPSHOT_AT_OR_BEFORE = """
SELECT seq, state FROM snapshots WHERE object_id = $1 AND seq <= $2
 ORDER BY seq DESC LIMIT 1
"""

# Pending inbox rows of one object, oldest first.
INBOX_OF = "SELECT id, kind, socket_id, data FROM inbox WHERE object_id = $1 ORDER BY id"

# Objects that have pending inbox rows (the polling fallback of LISTEN/NOTIFY).
INBOX_OBJECTS = "SELECT DISTINCT object_id FROM inbox LIMIT $1"

# Sockets this node held when it stopped (their clients are gone), except those whose
# close is already waiting in the inbox.
STALE_SOCKETS = """
SELECT w.object_id, w.socket_id
  FROM websockets AS w
 WHERE w.node = $1 AND w.closed_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM inbox AS i
                    WHERE i.object_id = w.object_id AND i.socket_id = w.socket_id
                      AND i.kind IN ('close', 'error'))
"""

# Alarms due before a moment, soonest first.
DUE_ALARMS = """
SELECT object_id, (extract(epoch FROM scheduled_at) * 1000)::bigint AS ms
  FROM alarms WHERE scheduled_at <= now() + $1 * interval '1 second'
 ORDER BY scheduled_at LIMIT $2
"""

# Liveness probe of a connection.
PING = "SELECT 1"
