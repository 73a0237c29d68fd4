"""A version per connection row, when its tokens were issued, and the refresh lease.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as table:
        # Incremented by every write of the row's tokens or status: a refresh saves its
        # answer only over the version it started from (or while it still holds the lease).
        table.add_column(sa.Column("version", sa.BigInteger(), nullable=False, server_default="1"))
        # When the stored access token was obtained: with expires_at, its whole lifetime.
        # Not backfilled (no column says it reliably): such rows use min_ttl as asked.
        table.add_column(sa.Column("issued_at", sa.DateTime(timezone=True)))
        # Who is refreshing the row, and until when the others wait for it (committed
        # before the provider is called, so it outlives a lost connection or process).
        table.add_column(sa.Column("refresh_lease_owner", sa.Text()))
        table.add_column(sa.Column("refresh_lease_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as table:
        table.drop_column("refresh_lease_until")
        table.drop_column("refresh_lease_owner")
        table.drop_column("issued_at")
        table.drop_column("version")
