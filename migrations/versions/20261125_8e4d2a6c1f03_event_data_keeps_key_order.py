"""Store event data and snapshots as json, which keeps object keys in their written order

Storage values and attachments are copied with structured-clone semantics, which keep the
order of a dict's keys; jsonb reorders them, so an object rebuilt from its log iterated its
dicts in another order than the live one. json keeps the text as written (and ->, ->> work
the same for SQL users).

Revision ID: 8e4d2a6c1f03
Revises: 5b1c0e7f9a21
Create Date: 2026-11-25 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "8e4d2a6c1f03"
down_revision: str | None = "5b1c0e7f9a21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ALTER COLUMN data TYPE json USING data::json")
    op.execute("ALTER TABLE snapshots ALTER COLUMN state TYPE json USING state::json")


def downgrade() -> None:
    op.execute("ALTER TABLE snapshots ALTER COLUMN state TYPE jsonb USING state::jsonb")
    op.execute("ALTER TABLE events ALTER COLUMN data TYPE jsonb USING data::jsonb")
