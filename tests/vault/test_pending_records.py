"""One-time records (states, connect links, form_post handles) stay single use against
someone who can write Redis: a used record is remembered by the database, which Redis
cannot recreate."""

from __future__ import annotations

import asyncio

import pytest

from oauthvault import AsyncOAuthTokenCache, OAuthTokenCache


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vault.db'}"
    request.getfixturevalue("pg")
    url: str = request.getfixturevalue("postgres_url")
    return url


def saved_in_redis(raw_redis):
    (name,) = raw_redis.keys("oauth:pending:*")
    return name, raw_redis.get(name)


def test_a_taken_record_put_back_into_redis_is_not_taken_again(database, redis_url, raw_redis, key):
    with OAuthTokenCache(database, redis_url, key) as vault:
        records = vault.pending_records("link", 600)
        saved = records.save({"who": "u"})
        name, copy = saved_in_redis(raw_redis)  # kept by someone who can write Redis
        assert records.take(saved.secret) == {"who": "u"}
        raw_redis.set(name, copy, ex=600)  # re-armed after use
        assert records.take(saved.secret) is None
        raw_redis.set(name, copy, ex=600)  # and again: still used
        assert records.take(saved.secret) is None


def test_a_record_put_back_before_its_use_is_still_taken_once(database, redis_url, raw_redis, key):
    with OAuthTokenCache(database, redis_url, key) as vault:
        records = vault.pending_records("state", 600)
        saved = records.save({"n": 1})
        name, copy = saved_in_redis(raw_redis)
        raw_redis.set(name, copy, ex=600)  # written back before the first use
        assert records.take(saved.secret) == {"n": 1}
        raw_redis.set(name, copy, ex=600)
        assert records.take(saved.secret) is None


def test_async_records_are_single_use_against_a_redis_writer(
    postgres_url, pg, redis_url, raw_redis, key
):
    async def scenario():
        async with AsyncOAuthTokenCache(postgres_url, redis_url, key) as vault:
            records = vault.pending_records("callback", 60)
            saved = await records.save({"code": "c"})
            name, copy = saved_in_redis(raw_redis)
            first = await records.take(saved.secret)
            raw_redis.set(name, copy, ex=60)
            return first, await records.take(saved.secret)

    assert asyncio.run(scenario()) == ({"code": "c"}, None)
