"""The audit trail of token reads: recorded off the hot path, never a token, append-only,
retained for a while, read back by workspace a page at a time; and nothing queued is lost
when the service is stopped with SIGTERM (a real ``oauthvault serve`` process)."""

from __future__ import annotations

import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from oauthvault import OAuthTokenCache, StorageUnavailable, TokenNotFound
from oauthvault.audit import AuditTrail, ProxiedCall
from oauthvault.service.apikeys import hash_api_key
from oauthvault.storage.location import parse_database_url

from tests.helpers.net import free_port
from tests.helpers.processes import start_serve, stop


def raw_rows(database_url: str) -> list[tuple[object, ...]]:
    location = parse_database_url(database_url)
    if location.kind == "postgres":
        with psycopg.connect(location.conninfo) as connection:
            return connection.execute("SELECT * FROM oauth_audit ORDER BY id").fetchall()
    connection = sqlite3.connect(str(location.sqlite_path))
    try:
        return connection.execute("SELECT * FROM oauth_audit ORDER BY id").fetchall()
    finally:
        connection.close()


def test_a_library_caller_opts_in_and_reads_are_recorded(database_url, key):
    with OAuthTokenCache(database_url, "", key, audit_caller="billing-worker") as vault:
        vault.store_tokens("google", "ws_a", "alice", "ACCESS-SECRET", "REFRESH-SECRET", 3600)
        assert vault.get_access_token("google", "ws_a", "alice") == "ACCESS-SECRET"
        assert vault.get_tokens("google", "ws_a", "alice") is not None
        with pytest.raises(TokenNotFound):
            vault.get_access_token("google", "ws_a", "nobody")
        trail = vault.audit_trail
        assert trail is not None
    # closed: everything queued was written
    entries = trail.read("ws_a")
    assert [(e.caller, e.actor_id, e.outcome) for e in entries] == [
        ("billing-worker", "alice", "served"),
        ("billing-worker", "alice", "served"),
        ("billing-worker", "nobody", "not_found"),
    ]
    assert all(e.provider == "google" and e.source is None for e in entries)
    assert entries[0].id < entries[1].id < entries[2].id
    text = repr(raw_rows(database_url))
    assert "SECRET" not in text  # never a token


def test_pages_filters_and_workspaces(database_url, key):
    location = parse_database_url(database_url)
    with OAuthTokenCache(database_url, "", key) as vault:  # migrates
        assert vault.audit_trail is None  # off unless asked for
    trail = AuditTrail(location)
    for index in range(7):
        trail.record("k", "google", "ws_p", f"u{index % 2}", "served", "10.0.0.1")
    trail.record("k", "slack", "ws_p", "u0", "refused")
    trail.record("k", "google", "ws_other", "u0", "served")
    trail.flush()
    first = trail.read("ws_p", limit=3)
    second = trail.read("ws_p", limit=3, after=first[-1].id)
    rest = trail.read("ws_p", limit=3, after=second[-1].id)
    assert [len(first), len(second), len(rest)] == [3, 3, 2]
    assert {e.workspace_id for e in first + second + rest} == {"ws_p"}
    assert [e.outcome for e in trail.read("ws_p", provider="slack")] == ["refused"]
    assert len(trail.read("ws_p", actor_id="u1")) == 3
    assert trail.read("ws_p", since=datetime.now(UTC) + timedelta(minutes=1)) == []
    trail.close()


def test_the_table_is_append_only_and_old_entries_are_pruned(database_url, key):
    location = parse_database_url(database_url)
    with OAuthTokenCache(database_url, "", key):
        pass
    now = [datetime.now(UTC) - timedelta(days=100)]
    trail = AuditTrail(location, retention_days=90, clock=lambda: now[0])
    trail.record("k", "google", "ws_r", "old", "served")
    trail.flush()
    now[0] = datetime.now(UTC)
    trail.record("k", "google", "ws_r", "new", "served")
    trail.flush()
    if location.kind == "postgres":
        with (
            psycopg.connect(location.conninfo, autocommit=True) as connection,
            pytest.raises(psycopg.errors.RaiseException),
        ):
            connection.execute("UPDATE oauth_audit SET outcome = 'served'")
    else:
        connection = sqlite3.connect(str(location.sqlite_path))
        try:
            with pytest.raises(sqlite3.IntegrityError):
                connection.execute("UPDATE oauth_audit SET outcome = 'served'")
        finally:
            connection.close()
    trail.prune()
    assert [e.actor_id for e in trail.read("ws_r")] == ["new"]
    trail.close()


def test_proxied_calls_share_the_queue_cleaned_and_never_a_query(database_url, key):
    location = parse_database_url(database_url)
    with OAuthTokenCache(database_url, "", key):  # migrates
        pass
    trail = AuditTrail(location, max_queue=2)
    long_path = "/v1/" + "p" * 3000 + "?q=SECRET"
    call = ProxiedCall("GET", "api.example", "/v1/x?token=SECRET#frag", 200, None, 7, 100, 0)
    trail.record_call("k\x07ey", "google", "ws_c", "u", call, "10.0.0.3")
    trail.record_call("k", "google", "ws_c", "u", ProxiedCall("POST", None, long_path, 404))
    trail.record_call("k", "google", "ws_c", "u", call)  # the queue is full: dropped, counted
    trail.record("k", "google", "ws_c", "u", "served")  # likewise
    assert trail.dropped == 2 and trail.queued == 2
    trail.flush()
    first, second = trail.read("ws_c")
    assert (first.caller, first.outcome, first.source) == ("k?ey", "proxied", "10.0.0.3")
    assert first.call == ProxiedCall("GET", "api.example", "/v1/x", 200, None, 7, 100, 0)
    assert second.call is not None and second.call.path == long_path[:2048]
    assert "SECRET" not in repr(raw_rows(database_url))
    assert [e.call for e in trail.latest_calls("ws_c", "google", "u", limit=1)] == [second.call]
    trail.close()


def test_sigterm_to_the_service_loses_no_entry(tmp_path, sqlite_url, key):
    """Reads as fast as one client can go, then SIGTERM at once: every read is in the
    trail after the process exits (the queue is written on the way out)."""
    port = free_port()
    api_key = "test-api-key-for-audit-0123456789"
    config = tmp_path / "oauthvault.toml"
    config.write_text(f'[[api_keys]]\nname = "backend"\nsha256 = "{hash_api_key(api_key)}"\n')
    with OAuthTokenCache(sqlite_url, "", key) as vault:
        vault.store_tokens("google", "ws_t", "u", "ACCESS", expires_in=3600)
    settings = {"DATABASE_URL": sqlite_url, "OAUTH_ENCRYPTION_KEY": key}
    process = start_serve(port, {**settings, "OAUTHVAULT_CONFIG": str(config)})
    base = f"http://127.0.0.1:{port}"
    reads = 0
    try:
        headers = {"Authorization": f"Bearer {api_key}"}
        query = {"provider": "google", "workspace_id": "ws_t", "actor_id": "u"}
        with httpx.Client(base_url=base, headers=headers) as client:
            for _ in range(300):
                assert client.get("/v1/connections/token", params=query).status_code == 200
                reads += 1
    finally:
        log = stop(process)  # SIGTERM
    # uvicorn shuts down gracefully, then re-raises the signal (exit status -15).
    assert process.returncode in (0, -signal.SIGTERM), log[-2000:]
    assert "Application shutdown complete" in log
    trail = AuditTrail(parse_database_url(sqlite_url))
    entries = trail.read("ws_t", limit=1000)
    assert reads == 300 and len(entries) == 300
    assert {(e.caller, e.outcome, e.source) for e in entries} == {
        ("backend", "served", "127.0.0.1")
    }


def test_no_entry_can_block_the_trail_and_a_failing_database_does_not_end_the_writer(
    database_url, key, tmp_path
):
    location = parse_database_url(database_url)
    with OAuthTokenCache(database_url, "", key):
        pass
    trail = AuditTrail(location)
    trail.record("a\x00b", "google", "ws_c", "u", "served", object())  # type: ignore[arg-type]
    trail.record("k" * 500, "google", "ws_c", "u", "served", "\ud800")
    trail.record("ok", "google", "ws_c", "u", "served", "10.0.0.2")
    trail.flush()
    entries = trail.read("ws_c")
    assert [(e.caller, e.source) for e in entries] == [
        ("a?b", "object"),
        ("k" * 100, "?"),
        ("ok", "10.0.0.2"),
    ]
    trail.close()
    # No table (a database never migrated): one plain reason, and the writer lives on.
    bare = parse_database_url(f"sqlite:///{tmp_path / 'bare.db'}")
    sqlite3.connect(str(bare.sqlite_path)).close()
    broken = AuditTrail(bare, flush_interval=0.05)
    broken.start()
    broken.record("k", "google", "ws", "u", "served")
    time.sleep(0.3)
    assert broken.writer_alive
    assert broken.queued == 1
    with pytest.raises(StorageUnavailable) as caught:
        broken.read("ws")
    assert "run oauthvault migrate" in str(caught.value)
    broken.close()
    missing = AuditTrail(parse_database_url(f"sqlite:///{tmp_path / 'none.db'}"))
    with pytest.raises(StorageUnavailable):
        missing.read("ws")
    assert not (tmp_path / "none.db").exists()
