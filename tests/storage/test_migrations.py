import sqlite3
import uuid
from contextlib import closing

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from oauthvault.audit import AuditTrail, ProxiedCall
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import HEAD_REVISION, alembic_config

from tests.fixtures.services import ADMIN_DATABASE_URL


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


AUDIT_CALL_COLUMNS = {
    "call_method",
    "call_host",
    "call_path",
    "call_status",
    "call_error",
    "call_ms",
    "call_response_bytes",
    "call_request_bytes",
}


def _audit_columns(location):
    if location.kind == "postgres":
        with psycopg.connect(location.conninfo) as connection:
            rows = connection.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'oauth_audit'"
            ).fetchall()
        return {row[0] for row in rows}
    with closing(sqlite3.connect(str(location.sqlite_path))) as connection:
        return {row[1] for row in connection.execute("PRAGMA table_info(oauth_audit)")}


def _audit_indexes(location):
    if location.kind == "postgres":
        with psycopg.connect(location.conninfo) as connection:
            rows = connection.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'oauth_audit'"
            ).fetchall()
        return {row[0] for row in rows}
    with closing(sqlite3.connect(str(location.sqlite_path))) as connection:
        return {row[1] for row in connection.execute("PRAGMA index_list(oauth_audit)")}


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_location(request, tmp_path):
    """An empty database of each engine (a PostgreSQL one of its own, dropped after)."""
    if request.param == "sqlite":
        yield parse_database_url(f"sqlite:///{tmp_path / 'migrations.db'}")
        return
    request.getfixturevalue("postgres_url")  # PostgreSQL is there (or a plain failure)
    name = f"oauthvault_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parse_database_url(ADMIN_DATABASE_URL.rpartition("/")[0] + "/" + name)
    finally:
        with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0011_adds_the_proxied_call_columns_and_0010_takes_them_away(fresh_location):
    """A trail written at 0010 keeps its rows through the upgrade (their call empty) and
    the downgrade; the append-only rule holds at 0011."""
    config = alembic_config(fresh_location)
    command.upgrade(config, "0010")
    assert not AUDIT_CALL_COLUMNS & _audit_columns(fresh_location)
    _insert_0010_row(fresh_location)

    command.upgrade(config, "0011")
    assert AUDIT_CALL_COLUMNS <= _audit_columns(fresh_location)
    assert "oauth_audit_calls_by_connection" in _audit_indexes(fresh_location)
    trail = AuditTrail(fresh_location)
    trail.record_call(
        "k", "google", "ws_m", "u", ProxiedCall("GET", "api.example", "/x", 200, None, 5, 10, 0)
    )
    trail.flush()
    entries = trail.read("ws_m")
    assert [(e.outcome, e.call is None) for e in entries] == [("served", True), ("proxied", False)]
    assert [e.call.path for e in trail.latest_calls("ws_m", "google", "u")] == ["/x"]
    trail.close()

    command.downgrade(config, "0010")
    assert not AUDIT_CALL_COLUMNS & _audit_columns(fresh_location)
    assert "oauth_audit_calls_by_connection" not in _audit_indexes(fresh_location)
    assert {"id", "at", "caller", "outcome", "source"} <= _audit_columns(fresh_location)
    command.upgrade(config, "head")  # and back up again
    assert AUDIT_CALL_COLUMNS <= _audit_columns(fresh_location)


def _insert_0010_row(location):
    """One token read as a 0010 service wrote it (its seven columns)."""
    values = ("2030-01-01T00:00:00+00:00", "k", "google", "ws_m", "u", "served", None)
    statement = (
        "INSERT INTO oauth_audit (at, caller, provider, workspace_id, actor_id, outcome, source)"
        " VALUES ({})"
    )
    if location.kind == "postgres":
        with psycopg.connect(location.conninfo, autocommit=True) as connection:
            connection.execute(statement.format(", ".join(["%s"] * 7)), values)
        return
    with closing(sqlite3.connect(str(location.sqlite_path))) as connection, connection:
        connection.execute(statement.format(", ".join("?" * 7)), values)
