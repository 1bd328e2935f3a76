"""Object logs: what handlers log, kept with the turn that logged it, in that turn's commit

Whatever an object's code logs through Python's ``logging`` while one of its turns runs is
written to ``object_logs`` by the flush that commits the turn, in the same transaction as
its events: a turn that commits keeps its lines, one that does not (a fenced former owner,
a refused commit) keeps none, and a frame a client received implies the lines of the turn
that sent it are in the table. Each line carries the seq of its turn (the object's seq when
the turn ended: its last event's, or for a turn that recorded none, the seq the object was
at), its place in the turn, and an ``id`` taken under the flushes' positions lock, so one
object's lines, in ``(seq, id)`` order, are in commit order and a reader that follows them
never skips one that commits late.

``durable_logs_v1`` writes a flush's lines, given as ``durable_log_v1`` records; the flush
calls it in the statement that calls ``durable_flush_v1``, after it (so under its lock, and
only if no object was stale). ``durable_flush_v1`` is left as it is: a node of the previous
version flushes as before and writes no lines.

Revision ID: e5b7d9f1a3c6
Revises: a8d0f2b4c6e9
Create Date: 2026-12-20 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5b7d9f1a3c6"
down_revision: str | None = "a8d0f2b4c6e9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One line of a flush, as the service's flush_records.log_line makes it; logged_at is the
# record's time in epoch seconds (Python's LogRecord.created).
LOG_TYPE = """
CREATE TYPE durable_log_v1 AS (
    object_id text,
    seq bigint,
    line integer,
    logged_at double precision,
    level smallint,
    logger text,
    message text
)
"""

# In the order given (each turn's lines in the order they were logged): the ids follow it,
# and they follow commit order, since the caller holds the positions lock to commit.
LOGS = """
CREATE FUNCTION durable_logs_v1(lines durable_log_v1[])
RETURNS integer
LANGUAGE plpgsql AS $body$
DECLARE
    written integer;
BEGIN
    INSERT INTO object_logs (object_id, seq, line, logged_at, level, logger, message)
    SELECT l.object_id, l.seq, l.line, to_timestamp(l.logged_at), l.level, l.logger, l.message
      FROM unnest(lines) WITH ORDINALITY AS l
     ORDER BY l.ordinality;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$body$
"""

COMMENTS = (
    """
    COMMENT ON FUNCTION durable_logs_v1 IS
    'Writes the log lines of a flush''s turns, in the flush''s transaction (after '
    'durable_flush_v1, under its positions lock)'
    """,
    "COMMENT ON TYPE durable_log_v1 IS 'durable_logs_v1: a line an object logged in a turn'",
)


def upgrade() -> None:
    op.create_table(
        "object_logs",
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger(),
            nullable=False,
            comment="The turn's: the object's seq when it ended (its last event, or the "
            "seq the object was at if it recorded none)",
        ),
        sa.Column(
            "id",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="Assigned under the flushes' lock: an object's lines in (seq, id) order "
            "are in commit order",
        ),
        sa.Column("line", sa.Integer(), nullable=False, comment="Place in its turn, from 1"),
        sa.Column(
            "logged_at", sa.DateTime(timezone=True), nullable=False, comment="When it was logged"
        ),
        sa.Column(
            "level",
            sa.SmallInteger(),
            nullable=False,
            comment="Python logging level: 10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR, 50 CRITICAL",
        ),
        sa.Column("logger", sa.Text(), nullable=False, comment="The logger's name"),
        sa.Column(
            "message",
            sa.Text(),
            nullable=False,
            comment="The formatted message, with its exception's traceback if any",
        ),
        sa.PrimaryKeyConstraint("object_id", "seq", "id", name=op.f("pk_object_logs")),
        comment="What objects' handlers logged, each line with its turn's seq, written in the "
        "commit of that turn; never updated, deleted only by an operator.",
    )
    for statement in (LOG_TYPE, LOGS, *COMMENTS):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION durable_logs_v1")
    op.execute("DROP TYPE durable_log_v1")
    op.drop_table("object_logs")
