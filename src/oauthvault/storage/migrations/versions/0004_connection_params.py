"""Connection parameters and the provider's whole token answer.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as table:
        # JSON object of the connection's parameters (shop, instance_url, realm_id, ...);
        # not secret, shown in listings.
        table.add_column(sa.Column("connection_params", sa.Text()))
        # The provider's last token answer, sealed like the tokens (it may hold secrets).
        table.add_column(sa.Column("token_response_encrypted", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as table:
        table.drop_column("token_response_encrypted")
        table.drop_column("connection_params")
