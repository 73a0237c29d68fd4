"""The audit trail of token reads: one append-only row per token handed out (or refused).

Rows are never updated (a trigger refuses it); old ones are deleted by the retention.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_APPEND_ONLY_PG = """
CREATE FUNCTION oauth_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'oauth_audit is append-only';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "oauth_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("workspace_id", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("source", sa.Text()),
        # SQLite: ids never reused, even after every row was pruned (readers page by id).
        sqlite_autoincrement=True,
    )
    op.create_index("oauth_audit_by_workspace", "oauth_audit", ["workspace_id", "id"])
    op.create_index("oauth_audit_by_time", "oauth_audit", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND_ONLY_PG)
        op.execute(
            "CREATE TRIGGER oauth_audit_append_only BEFORE UPDATE ON oauth_audit "
            "FOR EACH ROW EXECUTE FUNCTION oauth_audit_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER oauth_audit_append_only BEFORE UPDATE ON oauth_audit "
            "BEGIN SELECT RAISE(ABORT, 'oauth_audit is append-only'); END"
        )


def downgrade() -> None:
    op.drop_table("oauth_audit")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION oauth_audit_append_only()")
