"""initial schema

Revision ID: d422ab6562a8
Revises:
Create Date: 2026-11-25 20:51:13.868469
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d422ab6562a8"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retry_count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("object_id", name=op.f("pk_alarms")),
        comment="One scheduled alarm per object (projection of alarm events).",
    )
    op.create_index("ix_alarms_scheduled_at", "alarms", ["scheduled_at"], unique=False)
    op.create_table(
        "events",
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, comment="Gapless per object, from 1"),
        sa.Column(
            "position",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="Global order; assigned under a lock so that it follows commit order",
        ),
        sa.Column("type", sa.Text(), nullable=False, comment="Event type, e.g. message_received"),
        sa.Column("version", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="The event's fields",
        ),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("object_id", "seq", name=op.f("pk_events")),
        sa.UniqueConstraint("position", name=op.f("uq_events_position")),
        comment="Append-only log of every object's events; never updated or deleted.",
    )
    op.create_table(
        "inbox",
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, comment="message, close or error"),
        sa.Column("socket_id", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("object_id", "id", name=op.f("pk_inbox")),
        comment="Work for objects that are not live: consumed in the commit that records it.",
    )
    op.create_table(
        "objects",
        sa.Column("object_id", sa.Text(), nullable=False, comment="64 lowercase hex characters"),
        sa.Column("binding", sa.Text(), nullable=False, comment="Binding (class) name, e.g. CHAT"),
        sa.Column(
            "name", sa.Text(), nullable=True, comment="The name given to id_from_name, if any"
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "owner_node",
            sa.Text(),
            nullable=True,
            comment="Node running the object now; NULL when hibernated",
        ),
        sa.Column(
            "owner_epoch",
            sa.BigInteger(),
            server_default="0",
            nullable=False,
            comment="Fencing token: raised on every claim, checked on every append",
        ),
        sa.Column(
            "last_seq",
            sa.BigInteger(),
            server_default="0",
            nullable=False,
            comment="seq of the object's newest event (the expected version of the next append)",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("object_id", name=op.f("pk_objects")),
        comment="The catalog of durable objects and which node owns each one now.",
    )
    op.create_table(
        "snapshots",
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, comment="State after this event"),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "taken_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("object_id", "seq", name=op.f("pk_snapshots")),
        comment="Folded state of an object at a seq; bounds replay work on wake.",
    )
    op.create_table(
        "websockets",
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("socket_id", sa.Text(), nullable=False),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.Text()),
            server_default="{}",
            nullable=False,
            comment="Hibernation tags",
        ),
        sa.Column(
            "attachment",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Latest serialize_attachment value",
        ),
        sa.Column("hibernatable", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column(
            "node", sa.Text(), nullable=True, comment="Node whose gateway holds the connection"
        ),
        sa.Column(
            "connected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_activity_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "closed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="NULL while the socket is open",
        ),
        sa.Column("close_code", sa.Integer(), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("was_clean", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("object_id", "socket_id", name=op.f("pk_websockets")),
        comment="Presence projection: one row per socket, written with the events that caused it.",
    )
    op.create_index(
        "ix_websockets_open",
        "websockets",
        ["object_id"],
        unique=False,
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_index(
        "ix_websockets_tags", "websockets", ["tags"], unique=False, postgresql_using="gin"
    )
    # The presence view: open sockets with their object's binding and name.
    op.execute(
        """
        CREATE VIEW presence AS
        SELECT w.object_id, o.binding, o.name, w.socket_id, w.tags, w.attachment,
               w.connected_at, w.last_activity_at, w.node
          FROM websockets AS w
          JOIN objects AS o USING (object_id)
         WHERE w.closed_at IS NULL
        """
    )
    op.execute("COMMENT ON VIEW presence IS 'Open sockets: one row per connected client.'")


def downgrade() -> None:
    op.execute("DROP VIEW presence")
    op.drop_index("ix_websockets_tags", table_name="websockets", postgresql_using="gin")
    op.drop_index(
        "ix_websockets_open", table_name="websockets", postgresql_where=sa.text("closed_at IS NULL")
    )
    op.drop_table("websockets")
    op.drop_table("snapshots")
    op.drop_table("objects")
    op.drop_table("inbox")
    op.drop_table("events")
    op.drop_index("ix_alarms_scheduled_at", table_name="alarms")
    op.drop_table("alarms")
