"""Calls through the API proxy in the audit trail: nullable ``call_*`` columns on
``oauth_audit`` (a token read leaves them empty), so one table, one id sequence and one
retention keep ``GET /v1/audit`` a single trail; an index for a connection's latest calls.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("call_method", sa.Text()),
    ("call_host", sa.Text()),
    ("call_path", sa.Text()),
    ("call_status", sa.Integer()),
    ("call_error", sa.Text()),
    ("call_ms", sa.BigInteger()),
    ("call_response_bytes", sa.BigInteger()),
    ("call_request_bytes", sa.BigInteger()),
)
_INDEX = "oauth_audit_calls_by_connection"
_PROXIED = sa.text("outcome = 'proxied'")


def upgrade() -> None:
    for name, kind in _COLUMNS:  # nullable, no default: no row is rewritten
        op.add_column("oauth_audit", sa.Column(name, kind, nullable=True))
    op.create_index(
        _INDEX,
        "oauth_audit",
        ["workspace_id", "provider", "actor_id", "id"],
        postgresql_where=_PROXIED,
        sqlite_where=_PROXIED,
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="oauth_audit")
    for name, _ in reversed(_COLUMNS):
        op.drop_column("oauth_audit", name)
