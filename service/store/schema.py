"""The schema, the one Alembic migrates: tables SQL users may query, with comments in-database.

Every table of an object's data is keyed by ``object_id`` first so it can be distributed by
it; ``nodes`` and ``outbox`` (each node's rows to deliver) are keyed by node.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_now = sa.text("now()")


class OutboxRowType(sa.types.UserDefinedType[object]):
    """``durable_outbox_v2``, the composite type of a flush's outbox rows (migration
    d7a9c3e5f1b2): what a ``frames`` row of ``outbox`` holds."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "durable_outbox_v2"


# So that reflecting the database (Alembic's comparison with this schema) knows the type.
pg.base.ischema_names["durable_outbox_v2"] = OutboxRowType


objects = sa.Table(
    "objects",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True, comment="64 lowercase hex characters"),
    sa.Column("binding", sa.Text, nullable=False, comment="Binding (class) name, e.g. CHAT"),
    sa.Column("name", sa.Text, comment="The name given to id_from_name, if any"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("owner_node", sa.Text, comment="Node running the object now; NULL when hibernated"),
    sa.Column(
        "owner_epoch",
        sa.BigInteger,
        nullable=False,
        server_default="0",
        comment="Fencing token: raised on every claim, checked on every append",
    ),
    sa.Column(
        "last_seq",
        sa.BigInteger,
        nullable=False,
        server_default="0",
        comment="seq of the object's newest event (the expected version of the next append)",
    ),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    # Objects are named by binding and name (CHAT/lobby); neither changes, so HOT stays.
    sa.Index("ix_objects_binding_name", "binding", "name"),
    comment="The catalog of durable objects and which node owns each one now.",
    # Room on each page for in-place (HOT) updates of last_seq, which changes every flush.
    postgresql_with={"fillfactor": 50},
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, comment="Gapless per object, from 1"),
    sa.Column(
        "position",
        sa.BigInteger,
        sa.Identity(always=True),
        nullable=False,
        unique=True,
        comment="Global order; assigned under a lock so that it follows commit order",
    ),
    sa.Column("type", sa.Text, nullable=False, comment="Event type, e.g. message_received"),
    sa.Column("version", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("data", pg.JSON, nullable=False, comment="The event's fields"),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    comment="Append-only log of every object's events; never updated or deleted.",
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, comment="State after this event"),
    sa.Column("state", pg.JSON, nullable=False),
    sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    comment="Folded state of an object at a seq; bounds replay work on wake.",
)

websockets = sa.Table(
    "websockets",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("socket_id", sa.Text, primary_key=True),
    sa.Column(
        "tags", pg.ARRAY(sa.Text), nullable=False, server_default="{}", comment="Hibernation tags"
    ),
    sa.Column("attachment", pg.JSONB, comment="Latest serialize_attachment value"),
    sa.Column("hibernatable", sa.Boolean, nullable=False, server_default="true"),
    sa.Column("url", sa.Text),
    sa.Column("node", sa.Text, comment="Node whose gateway holds the connection"),
    sa.Column("connected_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("closed_at", sa.DateTime(timezone=True), comment="NULL while the socket is open"),
    sa.Column("close_code", sa.Integer),
    sa.Column("close_reason", sa.Text),
    sa.Column("was_clean", sa.Boolean),
    sa.Index("ix_websockets_tags", "tags", postgresql_using="gin"),
    sa.Index(
        "ix_websockets_open",
        "object_id",
        postgresql_where=sa.text("closed_at IS NULL"),
    ),
    # Who was in a room at a time T: connected_at <= T < closed_at, where an open socket
    # closes at infinity. Those that ended after a recent T are few: one range of this index.
    # last_activity_at stays unindexed, so its updates (one per message) stay HOT.
    sa.Index(
        "ix_websockets_object_id_closed_at",
        "object_id",
        sa.text("coalesce(closed_at, 'infinity'::timestamptz)"),
    ),
    # A dead node's open sockets, which a survivor closes (and a restarted node its own).
    sa.Index("ix_websockets_open_by_node", "node", postgresql_where=sa.text("closed_at IS NULL")),
    comment="Presence projection: one row per socket, written with the events that caused it.",
    # Room for in-place (HOT) updates of last_activity_at, which changes every message.
    postgresql_with={"fillfactor": 70},
)

alarms = sa.Table(
    "alarms",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_alarms_scheduled_at", "scheduled_at"),
    comment="One scheduled alarm per object (projection of alarm events).",
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False, comment="message, close or error"),
    sa.Column("socket_id", sa.Text, nullable=False),
    sa.Column("data", pg.JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    comment="Work for objects that are not live: consumed in the commit that records it.",
)

object_logs = sa.Table(
    "object_logs",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column(
        "seq",
        sa.BigInteger,
        primary_key=True,
        comment="The turn's: the object's seq when it ended (its last event, or the seq the "
        "object was at if it recorded none)",
    ),
    # Several turns may end at one seq (those that record no event): the id tells their
    # lines apart, and orders them as they committed.
    sa.Column(
        "id",
        sa.BigInteger,
        sa.Identity(always=True),
        primary_key=True,
        comment="Assigned under the flushes' lock: an object's lines in (seq, id) order are "
        "in commit order",
    ),
    sa.Column("line", sa.Integer, nullable=False, comment="Place in its turn, from 1"),
    sa.Column(
        "logged_at", sa.DateTime(timezone=True), nullable=False, comment="When it was logged"
    ),
    sa.Column(
        "level",
        sa.SmallInteger,
        nullable=False,
        comment="Python logging level: 10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR, 50 CRITICAL",
    ),
    sa.Column("logger", sa.Text, nullable=False, comment="The logger's name"),
    sa.Column(
        "message",
        sa.Text,
        nullable=False,
        comment="The formatted message, with its exception's traceback if any",
    ),
    comment="What objects' handlers logged, each line with its turn's seq, written in the "
    "commit of that turn; never updated, deleted only by an operator.",
)

#: ``durable_logs_v1`` (migration e5b7d9f1a3c6) writes a flush's lines, called by the
#: flush's statement after ``durable_flush_v1``.

#: Views are created by migration (they are not in the metadata): ``presence``, the open
#: sockets with their object's binding and name; ``object_history``, every event with its
#: object's binding and name, its socket's attachment and an inbound frame's decoded text.

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("node_id", sa.Text, primary_key=True, comment="The node's id (--node-id)"),
    sa.Column("address", sa.Text, comment="host:port it serves HTTP on"),
    sa.Column(
        "role",
        sa.Text,
        nullable=False,
        server_default="all",
        comment="all, gateway (sockets only) or host (objects only)",
    ),
    sa.Column(
        "lease_timeout",
        sa.Interval,
        nullable=False,
        comment="How long after its last heartbeat the node counts as dead",
    ),
    sa.Column(
        "started_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=_now,
        comment="When this run of the node joined; its heartbeats name it",
    ),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column(
        "stopped_at",
        sa.DateTime(timezone=True),
        comment="When it stopped gracefully; NULL while it runs",
    ),
    sa.Column(
        "swept_at",
        sa.DateTime(timezone=True),
        comment="When a live node closed the sockets it left open",
    ),
    sa.Column("swept_by", sa.Text, comment="The node that swept it"),
    sa.Column(
        "reads_frames",
        sa.Boolean,
        nullable=False,
        server_default=sa.false(),
        comment="Whether the node reads outbox rows that carry many frames",
    ),
    sa.Column(
        "draining_at",
        sa.DateTime(timezone=True),
        comment="When it began handing its objects over (SIGTERM); it is draining until it "
        "stops. NULL while it serves",
    ),
    comment="Nodes sharing this database, with their heartbeats: "
    "a node owns objects only while it is live.",
)

#: The ``live_nodes`` view (nodes that may own objects now) and the wake functions
#: ``durable_channel_v1`` and ``durable_wake_v1`` are created by migration a15b3d0f7906;
#: the view's ``draining_at`` by a8d0f2b4c6e9.

outbox = sa.Table(
    "outbox",
    metadata,
    # Keyed by the node that reads it: each node reads and deletes its own range, in order.
    sa.Column(
        "node",
        sa.Text,
        primary_key=True,
        comment="Node that delivers the row: the one holding the socket, or the one a reply "
        "answers",
    ),
    sa.Column(
        "position",
        sa.BigInteger,
        sa.Identity(always=True),
        primary_key=True,
        comment="Delivery order; assigned under the flushes' lock, so it follows commits",
    ),
    sa.Column("object_id", sa.Text, nullable=False, comment="The object that sent it"),
    sa.Column(
        "socket_id",
        sa.Text,
        nullable=False,
        comment="The socket the row is for; empty for a reply that opens none",
    ),
    sa.Column(
        "kind",
        sa.Text,
        nullable=False,
        comment="text, binary, close, resume, reply, auto_response, or frames (many of these "
        "in one row)",
    ),
    sa.Column("text", sa.Text, comment="A text frame's text"),
    sa.Column("data", pg.BYTEA, comment="A binary frame's bytes"),
    sa.Column("close_code", sa.Integer, comment="A close's code, if any"),
    sa.Column("close_reason", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column(
        "request_id",
        sa.Text,
        comment="A reply's request or call id, as the asking node waits for it",
    ),
    sa.Column(
        "reply",
        pg.JSONB,
        comment="A reply's status and headers or outcome; a resume's range of the log",
    ),
    sa.Column(
        "frames", pg.ARRAY(OutboxRowType()), comment="A frames row's rows, in delivery order"
    ),
    comment="Frames and closes objects sent to sockets other nodes hold, committed with "
    "the events that caused them; deleted once the holding node has delivered them.",
)

#: ``durable_route_v3`` (migration b3d5f7a9c1e2) writes a flush's outbox rows (frames,
#: closes, resumes, and replies to requests routed from other nodes; one ``frames`` row per
#: destination node that reads them) and sends its NOTIFYs, one per destination node.
