from alembic.script import ScriptDirectory

from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import HEAD_REVISION, alembic_config


def test_the_code_expects_alembic_head():
    config = alembic_config(parse_database_url(None))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_the_schema_matches_the_design(pg):
    columns = dict(
        pg.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'oauth_tokens'"
        ).fetchall()
    )
    assert columns["workspace_id"] == "character varying"
    assert columns["expires_at"] == "timestamp with time zone"
    assert columns["created_at"] == "timestamp with time zone"
    assert columns["id"] == "uuid"
    assert "key_id" in columns
