"""Connection status, last refresh and last error.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as table:
        # active | degraded | needs_reauth | revoked
        table.add_column(
            sa.Column("status", sa.String(20), nullable=False, server_default="active")
        )
        table.add_column(sa.Column("last_refreshed_at", sa.DateTime(timezone=True)))
        # An error code and short description from the provider, never a token.
        table.add_column(sa.Column("last_error", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as table:
        table.drop_column("last_error")
        table.drop_column("last_refreshed_at")
        table.drop_column("status")
