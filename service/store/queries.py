"""Hot-path SQL, as module constants with $n parameters (asyncpg), one comment each."""

from __future__ import annotations

from service.store import flush_records

# One flush in one statement: durable_flush_v1 (migration dd9f2007840a) takes the positions
# lock (identity values are taken before commit, so flushes hold it from first insert to
# commit and position order equals commit order), advances each object fenced by its epoch,
# and writes the events, presence and alarm projections, snapshots, inbox rows and one
# NOTIFY. Its parameters are named (a parameter out of place fails loudly), one array of
# records per kind of row, as flush_records.Arguments defines them. Returns the transaction
# id (see TRANSACTION_STATUS), the objects whose expected seq or epoch no longer held (then
# nothing was written), and the new inbox ids, ascending.
FLUSH = "SELECT xid, stale, inbox_ids FROM durable_flush_v1({})".format(
    ", ".join(f"{name} => ${n}" for n, name in enumerate(flush_records.Arguments._fields, 1))
)

# Columns of ``events`` that a large flush sends by COPY, in append order (= position
# order), named as the fields of its event records; ``position`` and ``recorded_at`` take
# their defaults.
EVENT_COLUMNS = tuple(name for name, _ in flush_records.fields(flush_records.event))

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

# One page of an object's events in a seq range: a long log is read page by page, each a
# short statement (a wake never outlives the command timeout, nor holds the whole log).
EVENTS_PAGE = """
SELECT seq, type, version, data FROM events
 WHERE object_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4
"""

# The newest messages an object published in a seq range that a resuming socket gets: those
# with no tag or one of its tags, newest first. A backward scan of the object's range of the
# primary key, which stops as soon as it has ``$5`` of them (the caller asks for one more
# than it keeps, to learn whether there were more).
#   The fields are those of version 1 of message_published, read as the log holds them: a
# resume rebuilds thousands of frames from them without decoding each event.
PUBLISHED_BETWEEN = """
SELECT seq, data->'data' AS data, data->>'binary' AS binary FROM events
 WHERE object_id = $1 AND seq > $2 AND seq <= $3 AND type = 'message_published'
   AND (data->>'tag' IS NULL OR data->>'tag' = ANY($4::text[]))
 ORDER BY seq DESC LIMIT $5
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

# Take a node id for this session (released when the session ends): false if a live node
# holds it. The two-key form keeps these locks apart from the positions lock.
TAKE_NODE_ID = "SELECT pg_try_advisory_lock(1685418593, hashtext($1))"

# The session holding a node id's lock, for the message that refuses a second node.
NODE_ID_HOLDER = """
SELECT host(a.client_addr) AS client_addr, a.backend_start
  FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
 WHERE l.locktype = 'advisory' AND l.classid = 1685418593
   AND l.objid = hashtext($1)::oid AND l.granted
 LIMIT 1
"""
