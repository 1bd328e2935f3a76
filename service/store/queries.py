"""Hot-path SQL, as module constants with $n parameters (asyncpg), one comment each."""

from __future__ import annotations

from service.store import flush_records

# One flush in one statement: durable_flush_v1 (migration dd9f2007840a) takes the positions
# lock (identity values are taken before commit, so flushes hold it from first insert to
# commit and position order equals commit order), advances each object fenced by its epoch,
# and writes the events, presence and alarm projections, snapshots and inbox rows (its one
# NOTIFY, on the channel every node shared, is no longer asked for: the wakes of a flush go
# to each node's own channel, see FLUSH_AND_ROUTE). Its parameters are named (a parameter
# out of place fails loudly), one array of records per kind of row, as
# flush_records.Arguments defines them. Returns the transaction id (see TRANSACTION_STATUS),
# the objects whose expected seq or epoch no longer held (then nothing was written), and
# the new inbox ids, ascending.
_FLUSH_CALL = "durable_flush_v1({})".format(
    ", ".join(f"{name} => ${n}" for n, name in enumerate(flush_records.Arguments._fields, 1))
)
FLUSH = "SELECT xid, stale, inbox_ids FROM " + _FLUSH_CALL

# The same flush, for one that writes inbox rows, output for sockets other nodes hold or
# replies to requests routed here (durable_route_v3, migration b3d5f7a9c1e2): it writes the
# outbox rows, each addressed to the node holding its socket or to the node a reply answers
# (recording that node as the holder of a socket the reply opens), one row per flush for a
# node that reads rows of many frames (as this version does), and sends one NOTIFY
# per destination node, carrying the ids
# of the objects woken there (an object no live node owns wakes the writer, which claims it)
# and the newest outbox position written for it. Two more parameters after the flush's: the
# woken ids, sorted, and the outbox rows (flush_records.outbox), in turn order. In the same
# statement, after durable_flush_v1 (so under its positions lock, and only if nothing was
# stale): the routing costs no round trip; notifications leave at commit, and a rollback
# drops them with the rows.
FLUSH_AND_ROUTE = (
    "SELECT f.xid, f.stale, f.inbox_ids,"
    " CASE WHEN cardinality(f.stale) = 0 THEN durable_route_v3(${}, ${}, ${}) END"
    " FROM {} AS f".format(
        flush_records.Arguments._fields.index("node_id") + 1,
        len(flush_records.Arguments._fields) + 1,
        len(flush_records.Arguments._fields) + 2,
        _FLUSH_CALL,
    )
)

# Either flush, for one whose turns logged (durable_logs_v1, migration e5b7d9f1a3c6): it
# also writes their lines to object_logs, given as one more parameter (after the routing's,
# if any): flush_records.log_line's rows, each turn's in order. In the same statement, after
# durable_flush_v1, as the routing is (so under its positions lock, which makes the lines'
# ids follow commit order, and only if nothing was stale): the lines cost no round trip and
# commit, or not, with the events of their turns.
_LOGS = "CASE WHEN cardinality(f.stale) = 0 THEN durable_logs_v1(${}) END"
_ARGUMENTS = len(flush_records.Arguments._fields)
FLUSH_LOGGING = (
    "SELECT f.xid, f.stale, f.inbox_ids, "
    + _LOGS.format(_ARGUMENTS + 1)
    + " FROM "
    + _FLUSH_CALL
    + " AS f"
)
FLUSH_AND_ROUTE_LOGGING = (
    "SELECT f.xid, f.stale, f.inbox_ids,"
    " CASE WHEN cardinality(f.stale) = 0 THEN durable_route_v3(${}, ${}, ${}) END,"
    " {} FROM {} AS f".format(
        flush_records.Arguments._fields.index("node_id") + 1,
        _ARGUMENTS + 1,
        _ARGUMENTS + 2,
        _LOGS.format(_ARGUMENTS + 3),
        _FLUSH_CALL,
    )
)

#: The flush's statement, by whether it routes and whether it carries log lines.
FLUSHES = {
    (False, False): FLUSH,
    (True, False): FLUSH_AND_ROUTE,
    (False, True): FLUSH_LOGGING,
    (True, True): FLUSH_AND_ROUTE_LOGGING,
}

# Columns of ``events`` that a large flush sends by COPY, in append order (= position
# order), named as the fields of its event records; ``position`` and ``recorded_at`` take
# their defaults.
EVENT_COLUMNS = tuple(name for name, _ in flush_records.fields(flush_records.event))

# Whether a flush whose COMMIT got no answer (the link broke) committed after all:
# 'committed', 'aborted' or 'in progress' (its backend has not finished yet).
TRANSACTION_STATUS = "SELECT txid_status($1)"

# Claim an object for this node (creating its catalog row), raising the fencing epoch: only
# if no other live node holds it (unowned, released, this node's own, or its owner is not in
# live_nodes: stopped, swept, or silent past its lease). No row otherwise (see OWNER_OF):
# a live owner's object is routed to, never taken, so two nodes never take it in turn.
CLAIM_OBJECT = """
INSERT INTO objects AS o (object_id, binding, name, owner_node, owner_epoch)
VALUES ($1, $2, $3, $4, 1)
ON CONFLICT (object_id) DO UPDATE
   SET owner_node = EXCLUDED.owner_node,
       owner_epoch = o.owner_epoch + 1,
       name = COALESCE(o.name, EXCLUDED.name),
       updated_at = now()
 WHERE o.owner_node IS NULL OR o.owner_node = EXCLUDED.owner_node
    OR NOT EXISTS (SELECT 1 FROM live_nodes AS l WHERE l.node_id = o.owner_node)
RETURNING binding, name, owner_epoch, last_seq
"""

# Claim an object that must exist already (woken by its inbox or an alarm), on the same
# condition as CLAIM_OBJECT.
CLAIM_EXISTING = """
UPDATE objects AS o
   SET owner_node = $2, owner_epoch = owner_epoch + 1, updated_at = now()
 WHERE o.object_id = $1
   AND (o.owner_node IS NULL OR o.owner_node = $2
        OR NOT EXISTS (SELECT 1 FROM live_nodes AS l WHERE l.node_id = o.owner_node))
RETURNING binding, name, owner_epoch, last_seq
"""

# Enter an object in the catalog, owned by nobody, unless it is there already: a gateway
# does so before it sends a new object's first request to a host, which claims it as an
# existing object (CLAIM_EXISTING).
REGISTER_OBJECT = """
INSERT INTO objects (object_id, binding, name) VALUES ($1, $2, $3)
ON CONFLICT (object_id) DO NOTHING
"""

# Who owns an object a claim did not get (NULL: released since; no row: no such object).
OWNER_OF = "SELECT owner_node FROM objects WHERE object_id = $1"

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

# Pending inbox rows of several objects (one wake names every object a flush wrote to),
# each object's oldest first.
INBOX_OF_MANY = """
SELECT object_id, id, kind, socket_id, data FROM inbox
 WHERE object_id = ANY ($1::text[]) ORDER BY object_id, id
"""

# Objects with pending inbox rows that this node may take (the polling fallback of
# LISTEN/NOTIFY): those of no live node but this one. A live owner polls its own.
INBOX_OBJECTS = """
SELECT DISTINCT i.object_id
  FROM inbox AS i LEFT JOIN objects AS o USING (object_id)
 WHERE o.owner_node IS NULL OR o.owner_node = $2
    OR NOT EXISTS (SELECT 1 FROM live_nodes AS l WHERE l.node_id = o.owner_node)
 LIMIT $1
"""

# Wake the owners of these objects now, one NOTIFY per destination node, as a flush does.
WAKE = "SELECT durable_wake_v1($1, $2::text[])"

# Wake these objects' live owners, or the given node for those nobody live owns (a gateway
# or a node handing its objects over chooses a host for them): no row, and no NOTIFY, if
# that node is not live, or has begun to drain since it was chosen (unless $3: it was
# chosen draining, for want of another).
WAKE_ON = """
SELECT durable_wake_v1(l.node_id, $2::text[]) FROM live_nodes AS l
 WHERE l.node_id = $1 AND (l.draining_at IS NULL OR $3)
"""

# Sockets a previous run of this node id held (their clients are gone), except those whose
# close is already waiting in the inbox.
STALE_SOCKETS = """
SELECT w.object_id, w.socket_id
  FROM websockets AS w
 WHERE w.node = $1 AND w.closed_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM inbox AS i
                    WHERE i.object_id = w.object_id AND i.socket_id = w.socket_id
                      AND i.kind IN ('close', 'error'))
"""

# Alarms due before a moment, soonest first, of the objects this node may run: its own, and
# those no live node owns (a dead owner's alarms still fire, wherever they are claimed).
DUE_ALARMS = """
SELECT a.object_id, (extract(epoch FROM a.scheduled_at) * 1000)::bigint AS ms
  FROM alarms AS a LEFT JOIN objects AS o USING (object_id)
 WHERE a.scheduled_at <= now() + $1 * interval '1 second'
   AND (o.owner_node IS NULL OR o.owner_node = $3
        OR NOT EXISTS (SELECT 1 FROM live_nodes AS l WHERE l.node_id = o.owner_node))
 ORDER BY a.scheduled_at LIMIT $2
"""

# This node's outbox rows after a position, in position order, which is commit order (see
# durable_route_v3): a range of the primary key. A ``frames`` row holds many rows, in order.
OUTBOX_AFTER = """
SELECT position, socket_id, kind, text, data, close_code, close_reason, request_id, reply,
       frames
  FROM outbox
 WHERE node = $1 AND position > $2 ORDER BY position LIMIT $3
"""

# The same read, which also deletes the rows up to $4 (delivered by the reads before it): one
# round trip where a read and a delete would take two. The SELECT sees the table as it was
# before the DELETE, and reads only rows past $2 >= $4, which it does not touch.
OUTBOX_AFTER_DELETING = """
WITH delivered AS (DELETE FROM outbox WHERE node = $1 AND position <= $4)
SELECT position, socket_id, kind, text, data, close_code, close_reason, request_id, reply,
       frames
  FROM outbox
 WHERE node = $1 AND position > $2 ORDER BY position LIMIT $3
"""

# This node's outbox rows up to a position: delivered.
OUTBOX_DELIVERED = "DELETE FROM outbox WHERE node = $1 AND position <= $2"

# Liveness probe of a connection.
PING = "SELECT 1"
