"""Create oauth_tokens and the cache invalidation log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("provider", sa.String(50), nullable=False),
        # Text ids: the seed's own example "ws_abc123" is not a UUID.
        sa.Column("workspace_id", sa.String(255), nullable=False),
        sa.Column("actor_id", sa.String(255), nullable=False),
        sa.Column("access_token_encrypted", sa.Text(), nullable=False),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=True),
        # Which key of the ring sealed this row; rotation looks for rows not on the newest.
        sa.Column("key_id", sa.String(16), nullable=False),
        # NULL when the provider gave no lifetime (e.g. GitHub OAuth apps).
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint(
            "provider", "workspace_id", "actor_id", name="uq_oauth_tokens_connection"
        ),
    )
    op.create_index("idx_oauth_tokens_expiry", "oauth_tokens", ["expires_at"])
    op.create_index("idx_oauth_tokens_key_id", "oauth_tokens", ["key_id"])
    op.create_table(
        "oauth_cache_invalidations",
        sa.Column("cache_key", sa.Text(), primary_key=True),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("oauth_cache_invalidations")
    op.drop_index("idx_oauth_tokens_key_id", table_name="oauth_tokens")
    op.drop_index("idx_oauth_tokens_expiry", table_name="oauth_tokens")
    op.drop_table("oauth_tokens")
