"""Encryptions per key: one row per key id, the count every instance adds to in batches
(random 96-bit nonces allow a key a bounded number of encryptions; ``doctor`` and
``/metrics`` read this).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_key_usage",
        sa.Column("key_id", sa.Text(), primary_key=True),
        sa.Column("encryptions", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("oauth_key_usage")
