"""The Redis ACL that README recommends is enough for the cache, and ``doctor`` names a
command the configured user may not run (issue 26, item 14)."""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path

import pytest

from oauthvault import OAuthTokenCache, Settings, generate_key
from oauthvault.doctor import run_checks

from tests.helpers.redis_server import RedisServer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_acl_command(password: str) -> list[str]:
    """README's ``redis-cli ACL SETUSER …`` line, as the arguments redis-cli would send."""
    found = re.search(r"^\$ redis-cli (ACL SETUSER .+)$", README.read_text(), re.MULTILINE)
    assert found is not None, "README shows no `redis-cli ACL SETUSER` line"
    return [word.replace("PASSWORD", password) for word in shlex.split(found[1])]


@pytest.fixture
def private_redis():
    server = RedisServer()
    server.start()
    yield server
    server.close()


def user_url(server: RedisServer, command: list[str], password: str) -> str:
    server.client().execute_command(*command)
    return f"redis://{command[2]}:{password}@127.0.0.1:{server.port}/0"


def redis_check(url: str, sqlite_url: str, key: str):
    settings = Settings.load(database_url=sqlite_url, redis_url=url, oauth_encryption_key=key)
    [check] = [c for c in run_checks(lambda: settings) if c.name == "redis"]
    return check


def test_a_vault_as_readme_s_acl_user_uses_the_cache(private_redis, sqlite_url):
    password = secrets.token_urlsafe(16)
    url = user_url(private_redis, readme_acl_command(password), password)
    key = generate_key()
    with OAuthTokenCache(database_url=sqlite_url, redis_url=url, encryption_key=key) as vault:
        vault.store_tokens("google", "ws_acl", "ann", access_token="acl-token", expires_in=3600)
        assert vault.get_access_token("google", "ws_acl", "ann") == "acl-token"
        assert vault.cache_available
        cached = private_redis.client().keys("oauth:token:*")
        assert len(cached) == 1  # written through as that user
    with OAuthTokenCache(database_url=sqlite_url, redis_url=url, encryption_key=key) as other:
        assert other.get_access_token("google", "ws_acl", "ann") == "acl-token"
        assert other.cache_info().redis_hits == 1  # another process: a Redis hit
    assert redis_check(url, sqlite_url, key).ok


@pytest.mark.parametrize("removed", ["+info", "'+script|load'", "+getdel", "+pttl"])
def test_doctor_names_a_command_the_user_may_not_run(private_redis, sqlite_url, removed):
    password = secrets.token_urlsafe(16)
    command = [word for word in readme_acl_command(password) if word != shlex.split(removed)[0]]
    url = user_url(private_redis, command, password)
    check = redis_check(url, sqlite_url, generate_key())
    assert not check.ok
    named = shlex.split(removed)[0][1:].replace("|", " ").upper()
    assert f"refuses commands the vault needs: {named}" in check.detail
    assert password not in check.detail
