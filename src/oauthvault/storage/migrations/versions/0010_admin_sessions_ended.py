"""Admin console sessions ended by signing out: one row per session id, kept until the
session would have expired anyway (epoch seconds), so a copy of a signed-out session's
cookie is refused by every instance.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_admin_ended",
        sa.Column("session_id", sa.Text(), primary_key=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_index("oauth_admin_ended_by_expiry", "oauth_admin_ended", ["expires_at"])


def downgrade() -> None:
    op.drop_table("oauth_admin_ended")
