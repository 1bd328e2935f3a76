"""Leave free space in objects and websockets pages so their frequent updates stay HOT

objects.last_seq changes on every flush and websockets.last_activity_at on every message;
neither column is indexed, so with room on the page PostgreSQL updates the row in place
(a heap-only tuple) instead of writing a new version and new index entries.

Revision ID: 5b1c0e7f9a21
Revises: d422ab6562a8
Create Date: 2026-11-25 21:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "5b1c0e7f9a21"
down_revision: str | None = "d422ab6562a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE objects SET (fillfactor = 50)")
    op.execute("ALTER TABLE websockets SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE websockets RESET (fillfactor)")
    op.execute("ALTER TABLE objects RESET (fillfactor)")
