"""Settings: environment vs explicit arguments, key ring resolution, bad values."""

from __future__ import annotations

import logging
import stat

import pytest

from oauthvault import ConfigError, OAuthTokenCache, Settings, StorageUnavailable, generate_key
from oauthvault.storage.migrations import HEAD_REVISION


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "OAUTH_ENCRYPTION_KEY",
        "OAUTHVAULT_ALLOW_EPHEMERAL_KEY",
        "OAUTHVAULT_REDIS_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_no_arguments_reads_the_environment(monkeypatch, tmp_path, redis_url):
    key = generate_key()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OAUTH_ENCRYPTION_KEY", key)
    with OAuthTokenCache() as vault:
        assert vault.backend_mode == "db+cache"
        assert vault.database == f"sqlite:///{tmp_path / 'env.db'}"
        vault.store_tokens("google", "ws", "u", "token", expires_in=60)
    with OAuthTokenCache(encryption_key=key, redis_url="") as again:
        assert again.backend_mode == "db-only"
        assert again.get_tokens("google", "ws", "u")["access_token"] == "token"


def test_explicit_arguments_win_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nowhere")
    monkeypatch.setenv("OAUTH_ENCRYPTION_KEY", "not a key")
    with OAuthTokenCache(f"sqlite:///{tmp_path / 'x.db'}", None, generate_key()) as vault:
        assert vault.database.startswith("sqlite:///")


def test_the_embedded_default_needs_no_configuration(tmp_path, caplog):
    with caplog.at_level(logging.WARNING), OAuthTokenCache() as vault:
        assert vault.database == "sqlite:///oauthvault.db"
        assert vault.backend_mode == "db-only"
        vault.store_tokens("google", "ws", "u", "survives-restart", expires_in=600)
    key_file = tmp_path / "oauthvault.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file) in caplog.text
    assert key_file.read_text().strip() not in caplog.text
    with OAuthTokenCache() as restarted:
        assert restarted.get_tokens("google", "ws", "u")["access_token"] == "survives-restart"


def test_postgres_without_a_key_refuses_to_start(postgres_url, pg):
    with pytest.raises(ConfigError) as caught:
        OAuthTokenCache(postgres_url)
    assert caught.value.setting == "OAUTH_ENCRYPTION_KEY"


def test_postgres_with_an_explicit_ephemeral_key(postgres_url, pg, caplog):
    with (
        caplog.at_level(logging.WARNING),
        OAuthTokenCache(postgres_url, allow_ephemeral_key=True) as vault,
    ):
        vault.store_tokens("google", "ws", "u", "token", expires_in=60)
        assert vault.get_tokens("google", "ws", "u")["access_token"] == "token"
    assert "ephemeral" in caplog.text


def test_ephemeral_opt_in_from_the_environment(monkeypatch, postgres_url, pg):
    monkeypatch.setenv("OAUTHVAULT_ALLOW_EPHEMERAL_KEY", "1")
    with OAuthTokenCache(postgres_url) as vault:
        assert len(vault.keyring) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://user:hunter2@db/x"),
        ("OAUTH_ENCRYPTION_KEY", "hunter2-is-not-a-key"),
        ("OAUTHVAULT_REDIS_TIMEOUT", "-hunter2"),
        ("OAUTHVAULT_ALLOW_EPHEMERAL_KEY", "hunter2"),
    ],
)
def test_bad_values_name_the_variable_but_never_show_the_value(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        OAuthTokenCache()
    assert caught.value.setting == variable
    assert "hunter2" not in str(caught.value)


def test_an_old_schema_asks_for_migrate(postgres_url, pg):
    pg.execute("UPDATE alembic_version SET version_num = '0000'")
    try:
        with pytest.raises(StorageUnavailable, match="oauthvault migrate"):
            OAuthTokenCache(postgres_url, encryption_key=generate_key())
    finally:
        pg.execute("UPDATE alembic_version SET version_num = %s", (HEAD_REVISION,))


def test_an_unreachable_database_is_storage_unavailable_without_the_password():
    url = "postgresql://root:hunter2@127.0.0.1:1/nowhere?connect_timeout=1"
    settings = Settings.load(database_url=url, oauth_encryption_key=generate_key())
    with pytest.raises(StorageUnavailable) as caught:
        from oauthvault.storage.postgres import PostgresTokenStore

        PostgresTokenStore(settings.database_location, connect_timeout=1)
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cr@et@db.invalid/vault",
        "postgresql://app:s3cr/et@db/vault",
        "postgresql://app:s3cr#et@db/vault",
        "postgresql://u@h:notaport/db",
    ],
)
def test_a_postgres_url_libpq_would_read_differently_is_refused(url):
    from oauthvault.storage.location import parse_database_url

    with pytest.raises(ConfigError) as caught:
        parse_database_url(url)
    assert "percent-encode" in str(caught.value)
    assert "s3cr" not in str(caught.value) and "et@" not in str(caught.value)


def test_encoded_and_multi_host_postgres_urls_are_accepted():
    from oauthvault.storage.location import parse_database_url

    assert parse_database_url("postgresql://app:s3cr%40et@db:5432/v").description == (
        "postgresql://db:5432/v"
    )
    assert parse_database_url("postgresql://u@h1:5432,h2:5432/v").kind == "postgres"
