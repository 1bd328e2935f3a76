"""SQL of the history's reads that the hot path never runs (those are in ``queries.py``)."""

from __future__ import annotations

# The last seq of an object recorded at or before a time (0: none). Events of one flush
# share its recorded_at, so a time never splits a turn.
SEQ_AT_TIME = """
SELECT coalesce(max(seq), 0) FROM events WHERE object_id = $1 AND recorded_at <= $2
"""

# The catalog entry of one object, with its open sockets (hibernated ones included).
OBJECT_BY_ID = """
SELECT o.object_id, o.binding, o.name, o.created_at, o.last_seq, o.updated_at, o.owner_node,
       (SELECT count(*) FROM websockets AS w
         WHERE w.object_id = o.object_id AND w.closed_at IS NULL) AS open_sockets
  FROM objects AS o
 WHERE o.object_id = $1
"""

# The catalog entries of a binding made from a name (more than one only if the namespace's
# key changed), found by ix_objects_binding_name.
OBJECTS_NAMED = """
SELECT o.object_id, o.binding, o.name, o.created_at, o.last_seq, o.updated_at, o.owner_node,
       (SELECT count(*) FROM websockets AS w
         WHERE w.object_id = o.object_id AND w.closed_at IS NULL) AS open_sockets
  FROM objects AS o
 WHERE o.binding = $1 AND o.name = $2
 ORDER BY o.created_at, o.object_id
"""

# A page of one object's events in a seq range, optionally also bounded by time (both ends
# inclusive, NULL: unbounded) and restricted to some types (NULL: all). Safe to page by seq:
# an object's seq order is decided by the expected-version check, not by commit timing.
EVENTS_IN = """
SELECT object_id, seq, position, type, version, data, recorded_at
  FROM events
 WHERE object_id = $1 AND seq > $2 AND seq <= $3
   AND ($4::timestamptz IS NULL OR recorded_at >= $4)
   AND ($5::timestamptz IS NULL OR recorded_at <= $5)
   AND ($6::text[] IS NULL OR type = ANY ($6))
 ORDER BY seq
 LIMIT $7
"""

# A page of one object's log lines after a (seq, id) ($2, $3) up to a seq ($4), optionally
# also bounded by when they were logged (both ends inclusive, NULL: unbounded), in (seq, id)
# order: a range of the primary key. Safe to follow: the lines of one object commit in
# (seq, id) order (seq follows its turns, id is taken under the flushes' positions lock), so
# no line can commit behind one read already.
LINES_IN = """
SELECT object_id, seq, id, line, logged_at, level, logger, message
  FROM object_logs
 WHERE object_id = $1 AND (seq, id) > ($2, $3) AND seq <= $4
   AND ($5::timestamptz IS NULL OR logged_at >= $5)
   AND ($6::timestamptz IS NULL OR logged_at <= $6)
 ORDER BY seq, id
 LIMIT $7
"""

# The same page newest first: the primary key (object_id, seq) read backwards, so the newest
# page of a log of millions of events, or the page just below any seq, costs one index
# descent and the rows returned.
EVENTS_IN_DESCENDING = """
SELECT object_id, seq, position, type, version, data, recorded_at
  FROM events
 WHERE object_id = $1 AND seq > $2 AND seq <= $3
   AND ($4::timestamptz IS NULL OR recorded_at >= $4)
   AND ($5::timestamptz IS NULL OR recorded_at <= $5)
   AND ($6::text[] IS NULL OR type = ANY ($6))
 ORDER BY seq DESC
 LIMIT $7
"""

# The global tail: up to $2 events after position $1, in position order, cut before the
# first row that a transaction still running may yet precede.
#
# Why the cut: positions are taken before commit, so a row can become visible while a row
# with a smaller position, taken by a transaction still running, is not yet; a reader that
# moved its cursor past the visible one would never see the other. The cut is a transaction
# id watermark, read from the snapshot of this very statement, with no column of its own:
# a visible row is settled when its transaction (the ``xmin`` system column) is older than
# every transaction still running (the snapshot's xmin). A visible row of a younger one
# (its xid in [xmin, xmax) of the snapshot) committed while an older transaction runs, and
# that one may hold a smaller position: the page ends before it, and the next call, once
# the older transaction has ended, returns both in position order.
#
# Why that suffices: flushes (durable_flush_v1, and durable_flush of older nodes) take the
# positions lock, then their transaction id, then their positions, and hold the lock to
# commit, so across flushes transaction id order is position order; a transaction still
# running that holds a position below a returned row would have the older id, and the row
# would not have been returned. Writers that bypass the lock (operator SQL, tests) are
# safe as long as their transaction ids follow the order of their positions (one-statement
# inserts that do not overlap do); two lock-free writers that interleave could be passed.
#
# ``xmin`` is a 32-bit xid: it is compared with the snapshot's 64-bit bounds modulo 2^32
# (PostgreSQL 13+ for pg_current_snapshot). A row older than 2^31 transactions may fall in
# the window by that arithmetic; the window moves on with the next transactions, so such a
# row is at worst held back briefly, never skipped. Transaction ids are the cluster's, not
# one database's: a writing transaction running anywhere in the cluster holds the tail back
# until it ends (a lag, never a loss; the node's own sessions end idle transactions).
TAIL = """
WITH snapshot AS MATERIALIZED (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS oldest,
           pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next
), page AS (
    SELECT object_id, seq, position, type, version, data, recorded_at,
           xmin::text::bigint AS xid32
      FROM events
     WHERE position > $1
     ORDER BY position
     LIMIT $2
), cut AS (
    SELECT min(p.position) AS position
      FROM page AS p, snapshot AS s
     WHERE (p.xid32 - s.oldest % 4294967296 + 4294967296) % 4294967296 < s.next - s.oldest
)
SELECT p.object_id, p.seq, p.position, p.type, p.version, p.data, p.recorded_at
  FROM page AS p, cut AS c
 WHERE c.position IS NULL OR p.position < c.position
 ORDER BY p.position
"""

# Where to start tailing to follow what commits from now on: the position of the newest
# settled event (0: none), by the rule of TAIL. Read from the top down, it stops at the
# first settled row: since transaction id order is position order (see TAIL), every row
# below it is settled too, and no transaction still running holds a position below it.
HEAD = """
WITH snapshot AS MATERIALIZED (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS oldest,
           pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next
)
SELECT coalesce((
    SELECT e.position
      FROM events AS e, snapshot AS s
     WHERE (e.xmin::text::bigint - s.oldest % 4294967296 + 4294967296) % 4294967296
           >= s.next - s.oldest
     ORDER BY e.position DESC
     LIMIT 1
), 0)
"""

# A page of the catalog in the order of (binding, name, id), a name-less object sorting as
# '' among its binding's, after the key of the previous page's last row ($3..$5; NULL: from
# the start), of one binding ($1; NULL: all), live or hibernated only ($2; NULL: both),
# whose name holds a text in any case ($7; NULL: any, name-less ones included; strpos, not
# LIKE, so that % and _ are only themselves). No index serves the order: an operator's
# listing scans the catalog.
CATALOG = """
SELECT o.object_id, o.binding, o.name, o.created_at, o.last_seq, o.updated_at, o.owner_node,
       (SELECT count(*) FROM websockets AS w
         WHERE w.object_id = o.object_id AND w.closed_at IS NULL) AS open_sockets
  FROM objects AS o
 WHERE ($1::text IS NULL OR o.binding = $1)
   AND ($2::boolean IS NULL OR (o.owner_node IS NOT NULL) = $2)
   AND ($3::text IS NULL
        OR (o.binding, coalesce(o.name, ''), o.object_id) > ($3::text, $4::text, $5::text))
   AND ($7::text IS NULL OR strpos(lower(o.name), lower($7::text)) > 0)
 ORDER BY o.binding, coalesce(o.name, ''), o.object_id
 LIMIT $6
"""

# The sockets open now ($3 NULL: closed_at IS NULL) or at an instant (connected at or before
# it, not closed by then), with a tag ($1, the GIN index on tags) and of one object ($2),
# oldest connection first. Connected and closed times are those of the flushes that wrote
# them, as recorded_at is of the events: the two agree on what happened before what.
OPEN_SOCKETS = """
SELECT w.object_id, o.binding, o.name, w.socket_id, w.tags, w.attachment, w.connected_at,
       w.last_activity_at, w.closed_at, w.close_code, w.node
  FROM websockets AS w
  JOIN objects AS o USING (object_id)
 WHERE ($1::text IS NULL OR w.tags @> ARRAY[$1::text])
   AND ($2::text IS NULL OR w.object_id = $2)
   AND CASE WHEN $3::timestamptz IS NULL THEN w.closed_at IS NULL
            ELSE w.connected_at <= $3 AND (w.closed_at IS NULL OR w.closed_at > $3) END
 ORDER BY w.connected_at, w.object_id, w.socket_id
 LIMIT $4
"""

# Some sockets of one object, open or closed (to name who sent what in its events).
SOCKETS_BY_ID = """
SELECT w.object_id, o.binding, o.name, w.socket_id, w.tags, w.attachment, w.connected_at,
       w.last_activity_at, w.closed_at, w.close_code, w.node
  FROM websockets AS w
  JOIN objects AS o USING (object_id)
 WHERE w.object_id = $1 AND w.socket_id = ANY ($2::text[])
"""
