"""Versions from one counter, so they only grow, also across a delete and a new connect;
and the change feed: every committed change of a connection's version is announced.

PostgreSQL: the sequence ``oauth_tokens_version_seq`` gives versions, and the trigger
``oauth_tokens_announce`` sends ``NOTIFY oauthvault_changes`` with
``[provider, workspace_id, actor_id, version, deleted]`` inside the writing transaction.
SQLite (one host, no NOTIFY): the one-row table ``oauth_version_counter`` gives versions
(a trigger keeps it at the highest one written); readers notice other connections' writes
with ``PRAGMA data_version``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ANNOUNCE = """
CREATE FUNCTION oauth_tokens_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('oauthvault_changes', json_build_array(
            OLD.provider, OLD.workspace_id, OLD.actor_id, OLD.version, true)::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.version IS DISTINCT FROM OLD.version THEN
        PERFORM pg_notify('oauthvault_changes', json_build_array(
            NEW.provider, NEW.workspace_id, NEW.actor_id, NEW.version, false)::text);
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE oauth_tokens_version_seq")
        op.execute("UPDATE oauth_tokens SET version = nextval('oauth_tokens_version_seq')")
        op.execute(_ANNOUNCE)
        op.execute(
            "CREATE TRIGGER oauth_tokens_announce AFTER INSERT OR UPDATE OR DELETE "
            "ON oauth_tokens FOR EACH ROW EXECUTE FUNCTION oauth_tokens_announce()"
        )
        return
    op.create_table("oauth_version_counter", sa.Column("value", sa.BigInteger(), nullable=False))
    op.execute(
        "INSERT INTO oauth_version_counter (value) "
        "SELECT coalesce(max(version), 0) FROM oauth_tokens"
    )
    op.execute(
        "CREATE TRIGGER oauth_tokens_count_insert AFTER INSERT ON oauth_tokens BEGIN "
        "UPDATE oauth_version_counter SET value = max(value, NEW.version); END"
    )
    op.execute(
        "CREATE TRIGGER oauth_tokens_count_update AFTER UPDATE OF version ON oauth_tokens "
        "BEGIN UPDATE oauth_version_counter SET value = max(value, NEW.version); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER oauth_tokens_announce ON oauth_tokens")
        op.execute("DROP FUNCTION oauth_tokens_announce()")
        op.execute("DROP SEQUENCE oauth_tokens_version_seq")
        return
    op.execute("DROP TRIGGER oauth_tokens_count_insert")
    op.execute("DROP TRIGGER oauth_tokens_count_update")
    op.drop_table("oauth_version_counter")
