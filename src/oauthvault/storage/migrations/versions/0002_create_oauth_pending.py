"""One-time records: OAuth states and connect links.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_pending",
        # SHA-256 (hex) of the secret handed out: the secret itself is never stored.
        sa.Column("record_id", sa.String(64), primary_key=True),
        # Sealed with the key ring, bound to record_id (holds PKCE verifier and nonce).
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("idx_oauth_pending_expiry", "oauth_pending", ["expires_at"])


def downgrade() -> None:
    op.drop_index("idx_oauth_pending_expiry", table_name="oauth_pending")
    op.drop_table("oauth_pending")
