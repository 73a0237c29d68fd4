"""The audit trail's stores: one contract, run on PostgreSQL and SQLite by inheritance (the
queue and writer thread above them are tests/test_audit.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oauthvault import StorageUnavailable
from oauthvault.storage.audit_postgres import PostgresAuditStore
from oauthvault.storage.audit_sqlite import SQLiteAuditStore
from oauthvault.storage.audit_store import AuditEntry, EntryRefused, ProxiedCall
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import upgrade

from tests.helpers.net import free_port

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def entry(actor="u", *, at=NOW, provider="google", workspace="ws", source=None):
    return AuditEntry(at, "k", provider, workspace, actor, "served", source)


def proxied(actor="u", *, at=NOW, status=200, error=None, provider="google"):
    call = ProxiedCall("GET", "api.example", f"/v1/{actor}", status, error, 12, 3456, 78)
    return AuditEntry(at, "k", provider, "ws", actor, "proxied", "10.0.0.2", call=call)


def read(store, workspace="ws", *, provider=None, actor=None, since=None, after=0, limit=100):
    return store.read(workspace, provider, actor, since, after, limit)


class AuditStoreContract:
    #: A value this engine refuses in an entry for its content (never sent by the trail,
    #: which cleans what it records).
    refused: object

    def test_a_batch_is_written_and_read_back_a_page_at_a_time(self, store):
        store.write([entry(f"u{n}", at=NOW + timedelta(seconds=n)) for n in range(5)])
        first = read(store, limit=3)
        rest = read(store, limit=3, after=first[-1].id)
        assert [e.actor_id for e in first + rest] == ["u0", "u1", "u2", "u3", "u4"]
        assert [e.id for e in first + rest] == sorted({e.id for e in first + rest})
        assert first[1].at == NOW + timedelta(seconds=1) and first[1].at.tzinfo == UTC
        assert first[0] == AuditEntry(NOW, "k", "google", "ws", "u0", "served", None, first[0].id)

    def test_reads_filter_by_workspace_provider_actor_and_time(self, store):
        store.write(
            [
                entry("a", provider="slack"),
                entry("b", at=NOW + timedelta(hours=1), source="10.0.0.1"),
                entry("a", workspace="other"),
            ]
        )
        assert [e.actor_id for e in read(store)] == ["a", "b"]
        assert [e.actor_id for e in read(store, provider="slack")] == ["a"]
        assert [e.source for e in read(store, actor="b")] == ["10.0.0.1"]
        assert [e.actor_id for e in read(store, since=NOW + timedelta(minutes=1))] == ["b"]
        assert [e.workspace_id for e in read(store, "other")] == ["other"]

    def test_pruning_removes_only_entries_before_the_cutoff(self, store):
        store.write([entry("old", at=NOW - timedelta(days=100)), entry("new")])
        store.prune(NOW - timedelta(days=90))
        assert [e.actor_id for e in read(store)] == ["new"]

    def test_an_entry_refused_for_its_content_is_told_apart_from_an_outage(self, store):
        with pytest.raises(EntryRefused) as caught:
            store.write([entry("kept"), entry(provider=self.refused)])
        assert caught.value.reason  # the driver's error class, never the entry
        assert read(store) == []  # a batch is written whole or not at all
        store.write([entry("kept")])  # and the store goes on
        assert [e.actor_id for e in read(store)] == ["kept"]

    def test_proxied_calls_are_kept_beside_token_reads_and_read_back_whole(self, store):
        store.write([entry("a"), proxied("a"), proxied("a", status=404, error="not_found")])
        read_back = read(store)
        assert [e.outcome for e in read_back] == ["served", "proxied", "proxied"]
        assert read_back[0].call is None
        call = ProxiedCall("GET", "api.example", "/v1/a", 200, None, 12, 3456, 78)
        assert read_back[1] == AuditEntry(
            NOW, "k", "google", "ws", "a", "proxied", "10.0.0.2", read_back[1].id, call
        )
        assert read_back[2].call == ProxiedCall(
            "GET", "api.example", "/v1/a", 404, "not_found", 12, 3456, 78
        )
        assert read_back[1].as_dict()["call"] == {
            "method": "GET",
            "host": "api.example",
            "path": "/v1/a",
            "status": 200,
            "error": None,
            "duration_ms": 12,
            "response_bytes": 3456,
            "request_bytes": 78,
        }

    def test_a_connections_latest_calls_newest_first_and_only_its_own(self, store):
        store.write(
            [
                *(proxied("a", at=NOW + timedelta(seconds=n), status=200 + n) for n in range(5)),
                entry("a"),
                proxied("b"),
                proxied("a", provider="slack"),
            ]
        )
        latest = store.latest_calls("ws", "google", "a", 3)
        assert [e.call.status for e in latest] == [204, 203, 202]
        assert store.latest_calls("ws", "google", "nobody", 50) == []
        assert len(store.latest_calls("ws", "slack", "a", 50)) == 1

    def test_a_closed_store_connects_again_on_the_next_write(self, store):
        store.write([entry("before")])
        store.close()
        store.close()  # closing twice is harmless
        store.write([entry("after")])
        assert [e.actor_id for e in read(store)] == ["before", "after"]


class TestPostgresAuditStore(AuditStoreContract):
    refused = "nul\x00byte"

    @pytest.fixture
    def store(self, postgres_url, pg):
        store = PostgresAuditStore(parse_database_url(postgres_url), connect_timeout=3)
        yield store
        store.close()

    def test_a_lost_connection_fails_one_write_and_the_next_reconnects(self, store, pg):
        store.write([entry("before")])
        pid = store._connection.info.backend_pid  # noqa: SLF001 - the store's own connection, to kill
        pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StorageUnavailable):
            store.write([entry("lost")])
        store.write([entry("after")])
        assert [e.actor_id for e in read(store)] == ["before", "after"]

    def test_an_unreachable_server_is_unavailable_with_a_plain_reason(self):
        url = f"postgresql://root:hunter2@127.0.0.1:{free_port()}/nowhere"
        store = PostgresAuditStore(parse_database_url(url), connect_timeout=1)
        for attempt in (lambda: store.write([entry()]), lambda: read(store)):
            with pytest.raises(StorageUnavailable) as caught:
                attempt()
            assert str(caught.value).endswith(": OperationalError")
            assert "hunter2" not in str(caught.value)


class TestSQLiteAuditStore(AuditStoreContract):
    refused = object()

    @pytest.fixture
    def store(self, tmp_path):
        location = parse_database_url(f"sqlite:///{tmp_path / 'audit.db'}")
        upgrade(location)
        store = SQLiteAuditStore(location)
        yield store
        store.close()

    def test_reading_a_database_that_is_not_there_creates_none(self, tmp_path):
        store = SQLiteAuditStore(parse_database_url(f"sqlite:///{tmp_path / 'none.db'}"))
        with pytest.raises(StorageUnavailable, match="no database at"):
            read(store)
        assert not (tmp_path / "none.db").exists()
