"""``oauthvault doctor``: checks that say in plain words what is wrong and what to do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis
from redis.exceptions import RedisError

from oauthvault.config import Settings, resolve_keyring
from oauthvault.errors import DecryptionError, VaultError
from oauthvault.storage.location import DatabaseLocation
from oauthvault.vault import OAuthTokenCache

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def run_checks(load_settings: Callable[[], Settings]) -> Iterator[Check]:
    """Yield one :class:`Check` per concern, stopping where later checks cannot run."""
    try:
        settings = load_settings()
        location: DatabaseLocation = settings.database_location
    except VaultError as error:
        yield Check("configuration", False, str(error))
        return
    yield Check("configuration", True, f"database {location.description}")
    try:
        keyring = resolve_keyring(settings, location)
    except VaultError as error:
        yield Check("key ring", False, str(error))
        return
    yield Check(
        "key ring", True, f"{len(keyring)} key(s), newest first: {', '.join(keyring.key_ids)}"
    )
    yield from _database_checks(settings)
    yield _service_check(settings)
    yield _providers_check(settings)
    if settings.redis_url_value is not None:
        yield _redis_check(settings.redis_url_value, settings.redis_timeout)
    else:
        yield Check("redis", True, "REDIS_URL not set: db-only mode, no cache")


def _database_checks(settings: Settings) -> Iterator[Check]:
    try:
        vault = OAuthTokenCache(settings=settings.model_copy(update={"redis_url": None}))
    except VaultError as error:
        yield Check("database", False, str(error))
        return
    with vault:
        try:
            counts = vault.count_by_key_id()
        except VaultError as error:
            yield Check("database", False, str(error))
            return
        yield Check("database", True, f"{sum(counts.values())} connection(s) stored")
        ring = set(vault.keyring.key_ids)
        unknown = {key_id: n for key_id, n in counts.items() if key_id not in ring}
        older = {k: n for k, n in counts.items() if k in ring and k != vault.keyring.key_ids[0]}
        if unknown:
            yield Check(
                "key coverage",
                False,
                f"rows sealed with key ids not in OAUTH_ENCRYPTION_KEY: {unknown}; add those "
                "keys back to the ring (after the newest) or these tokens cannot be read",
            )
        elif older:
            yield Check(
                "key coverage", True, f"rows on older keys {older}: run `oauthvault rotate-key`"
            )
        else:
            yield Check("key coverage", True, "every row is sealed with the newest key")
        yield _sample_check(vault)


def _sample_check(vault: OAuthTokenCache) -> Check:
    sample = vault.list_connections(limit=1)
    if not sample:
        return Check("decryption", True, "no rows to test yet")
    key = sample[0].key
    try:
        # Straight from the database: the cache could hide a row that no longer decrypts.
        found = vault.get_stored_tokens(key.provider, key.workspace_id, key.actor_id)
    except DecryptionError:
        return Check(
            "decryption",
            False,
            f"the row of {key.provider}/{key.workspace_id}/{key.actor_id} does not decrypt: "
            "wrong OAUTH_ENCRYPTION_KEY, or the row was altered",
        )
    if found is None:
        return Check("decryption", True, "sample row vanished while checking")
    return Check("decryption", True, "a sample row decrypts")


def _service_check(settings: Settings) -> Check:
    from oauthvault.service.config import load_service_settings

    try:
        config = load_service_settings(settings.config_file, settings.config_variables)
    except VaultError as error:
        return Check("service", False, str(error))
    if settings.config_file is None:
        return Check("service", True, "no configuration file (OAUTHVAULT_CONFIG): defaults")
    return Check(
        "service",
        True,
        f"public URL {config.public_url}; {len(config.api_keys)} API key(s); "
        f"{len(config.return_urls)} return URL prefix(es)",
    )


def _providers_check(settings: Settings) -> Check:
    from oauthvault.providers.config import load_provider_configs

    try:
        providers = load_provider_configs(settings.config_file, settings.config_variables)
    except VaultError as error:
        return Check("providers", False, str(error))
    if not providers:
        return Check("providers", True, "none configured (OAUTHVAULT_CONFIG): storage only")
    return Check("providers", True, f"{len(providers)} configured: {', '.join(sorted(providers))}")


def _os_reason(error: Exception) -> str:
    """The reason an OS or server gave (``Connection refused``, ``Timeout connecting``,
    ``invalid password``): the part of redis-py's message after its host and port."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text.rsplit(". ", 1)[-1].rstrip(".") or "no answer"


def _redis_check(url: str, timeout: float) -> Check:
    from oauthvault.cache.redis_base import redis_location

    where = redis_location(url)
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except RedisError as error:
        return Check(
            "redis",
            False,
            f"cannot reach Redis at {where} ({type(error).__name__}: {_os_reason(error)}); "
            "the vault still works from the database, without the cache",
        )
    finally:
        client.close()
    return Check("redis", True, f"Redis at {where} answers")
