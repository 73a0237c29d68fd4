"""An index the worker's "what is due" scan reads alone: the refreshable connections by
expiry, with their ids (an index-only scan, however many rows the table holds).

Building it reads the whole table once; on a large table run ``oauthvault migrate`` when
writes are quiet (it locks writes out while it builds).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_REFRESHABLE = "status IN ('active', 'degraded') AND refresh_token_encrypted IS NOT NULL"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX idx_oauth_tokens_due ON oauth_tokens (expires_at) "
            f"INCLUDE (provider, workspace_id, actor_id) WHERE {_REFRESHABLE}"
        )
    else:  # SQLite has no INCLUDE: the ids are key columns
        op.execute(
            "CREATE INDEX idx_oauth_tokens_due ON oauth_tokens "
            f"(expires_at, provider, workspace_id, actor_id) WHERE {_REFRESHABLE}"
        )


def downgrade() -> None:
    op.execute("DROP INDEX idx_oauth_tokens_due")
