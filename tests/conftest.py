"""Shared fixtures: real PostgreSQL and Redis, fresh per test, private Redis servers, and a
settable clock.

A missing service fails the run: scripts/test starts PostgreSQL and Redis first, and no
test here skips for want of one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from oauthvault import generate_key
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import upgrade

from tests.helpers.clock import Clock
from tests.helpers.redis_cluster import RedisCluster
from tests.helpers.redis_server import RedisServer

ADMIN_DATABASE_URL = os.environ.get(
    "OAUTHVAULT_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OAUTHVAULT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _database_url(name: str) -> str:
    base, _, _ = ADMIN_DATABASE_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created for this test session, migrated to head, dropped at the end."""
    name = f"oauthvault_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(ADMIN_DATABASE_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is required (OAUTHVAULT_TEST_DATABASE_URL): {error}; run scripts/test",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _database_url(name)
    upgrade(parse_database_url(url))
    yield url
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(postgres_url: str) -> Iterator[psycopg.Connection]:
    """A direct connection to the session database, emptied before each test."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE oauth_tokens, oauth_cache_invalidations, oauth_pending, oauth_audit"
        )
        yield connection


@pytest.fixture(scope="session")
def _redis_checked() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(
            f"Redis is required (OAUTHVAULT_TEST_REDIS_URL): {error}; run scripts/test",
            pytrace=False,
        )
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A private three-master Redis Cluster for the session (loopback only)."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_url(_redis_checked: str) -> Iterator[str]:
    """The shared test Redis database, flushed before each test."""
    client = redis.Redis.from_url(_redis_checked)
    client.flushdb()
    yield _redis_checked
    client.close()


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vault.db'}"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def clock() -> Clock:
    """A clock at :data:`tests.helpers.clock.NOW`, for a vault's ``clock=``; tests advance it."""
    return Clock()
