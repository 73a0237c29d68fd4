"""``oauthvault doctor``: checks that say in plain words what is wrong and what to do.

A check either passes (``ok``), fails, or passes with a ``warning``: something works but
not as one may expect (a provider that cannot revoke), which does not fail the run.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import NoPermissionError, NoScriptError, RedisError, ResponseError

from oauthvault.config import Settings, resolve_keyring
from oauthvault.crypto.usage import usage_level
from oauthvault.errors import DecryptionError, VaultError
from oauthvault.storage.location import DatabaseLocation
from oauthvault.vault import OAuthTokenCache

if TYPE_CHECKING:
    from oauthvault.providers.config import ProviderConfig

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: Passed, but worth acting on; never set on a failed check.
    warning: bool = False


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
    yield from _provider_checks(settings)
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
        yield _key_usage_check(vault, settings.key_encryption_limit)
        yield _sample_check(vault)


def _key_usage_check(vault: OAuthTokenCache, limit: int) -> Check:
    """The newest key's encryptions against ``limit`` (the others no longer encrypt): a
    warning past half, a failure at it."""
    try:
        totals = vault.key_usage.read()
    except VaultError as error:
        return Check("key usage", False, str(error))
    used = {key_id: totals.get(key_id, 0) for key_id in vault.keyring.key_ids}
    newest = vault.keyring.key_ids[0]
    counts = ", ".join(f"{key_id}: {count}" for key_id, count in used.items())
    remedy = (
        "put a new key first in OAUTH_ENCRYPTION_KEY (`oauthvault keygen`), deploy it, then "
        "run `oauthvault rotate-key`"
    )
    match usage_level(used[newest], limit):
        case "over":
            return Check(
                "key usage",
                False,
                f"key {newest} reached the limit of {limit} encryptions, past which its "
                f"random nonces may repeat ({counts}): {remedy}",
            )
        case "warn":
            return Check(
                "key usage",
                True,
                f"key {newest} made over half of the limit of {limit} encryptions "
                f"({counts}): {remedy}",
                warning=True,
            )
        case _:
            return Check("key usage", True, f"encryptions by key, of {limit} allowed: {counts}")


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


def _provider_checks(settings: Settings) -> Iterator[Check]:
    from oauthvault.providers.config import load_provider_configs

    try:
        providers = load_provider_configs(settings.config_file, settings.config_variables)
    except VaultError as error:
        yield Check("providers", False, str(error))
        return
    if not providers:
        yield Check("providers", True, "none configured (OAUTHVAULT_CONFIG): storage only")
        return
    yield Check("providers", True, f"{len(providers)} configured: {', '.join(sorted(providers))}")
    for name, config in sorted(providers.items()):
        if config.spec is None:
            try:
                config = _discovered(config, settings.refresh_timeout)
            except VaultError as error:
                yield Check("discovery", False, f"{name}: {error}")
                continue
        check = _revocation_check(config)
        if check is not None:
            yield check


def _discovered(config: ProviderConfig, timeout: float) -> ProviderConfig:
    """``config`` with its spec discovered from its issuer, as the vault would."""
    import httpx

    from oauthvault.providers.discovery import discover

    if config.issuer is None:  # pragma: no cover - the config loader forbids it
        return config
    with httpx.Client(timeout=timeout) as client:
        return config.resolved(discover(config.issuer, client, name=config.name))


def _revocation_check(config: ProviderConfig) -> Check | None:
    """A warning when ``config`` (with its spec) cannot revoke: deleting or disconnecting a
    connection then only forgets its tokens here (pure)."""
    spec = config.spec
    if spec is None or (spec.revocation_endpoint is not None and spec.revocation_method):
        return None
    if config.issuer is not None:
        where = "its discovery metadata (OpenID and RFC 8414) has no revocation_endpoint"
    else:
        where = "no revocation endpoint is known for it"
    return Check(
        "revocation",
        True,
        f"{config.name} cannot revoke ({where}): deleting a connection only forgets its "
        f"tokens here; set providers.{config.name}.revocation_endpoint if the provider has one",
        warning=True,
    )


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
        try:
            client.ping()
            denied = []
        except NoPermissionError:
            denied = ["PING"]
        denied += _denied_commands(client, url, timeout)
    except RedisError as error:
        return Check(
            "redis",
            False,
            f"cannot reach Redis at {where} ({type(error).__name__}: {_os_reason(error)}); "
            "the vault still works from the database, without the cache",
        )
    finally:
        client.close()
    if denied:
        return Check(
            "redis",
            False,
            f"Redis at {where} refuses commands the vault needs: {', '.join(denied)}; "
            "grant them to this user (README: the Redis ACL), or the cache stays off",
        )
    return Check("redis", True, f"Redis at {where} answers and allows every command the vault uses")


def _denied_commands(client: redis.Redis, url: str, timeout: float) -> list[str]:
    """The commands the vault sends Redis that this user may not run, tried one by one on
    a probe key of its own (expiring in 30 seconds, deleted at the end). Trying works on
    every Redis version and needs no ``ACL`` permission (``ACL DRYRUN`` would)."""
    from redis.cluster import RedisCluster

    from oauthvault.cache.keys import pending_cache_key
    from oauthvault.cache.redis_base import cluster_enabled
    from oauthvault.cache.versioned import SET_IF_NEWER, set_if_newer_args

    denied: list[str] = []
    keys: Any = client
    try:
        if cluster_enabled(client.info("cluster")):
            # Keys live on their slots' masters: probe them as the vault does.
            keys = RedisCluster.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
    except NoPermissionError:
        denied.append("INFO")
    probe = pending_cache_key(f"doctor-{secrets.token_hex(8)}")
    sha = hashlib.sha1(SET_IF_NEWER.encode(), usedforsecurity=False).hexdigest()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("SET", lambda: keys.set(probe, b"0:", ex=30)),
        ("GET", lambda: keys.get(probe)),
        ("PTTL", lambda: keys.pttl(probe)),
        ("SCRIPT LOAD", lambda: keys.script_load(SET_IF_NEWER)),
        ("EVALSHA", lambda: keys.evalsha(sha, 1, probe, *set_if_newer_args(1, b"1:", 30))),
        ("GETDEL", lambda: keys.getdel(probe)),
        ("DEL", lambda: keys.delete(probe)),
    ]
    for command, step in steps:
        try:
            step()
        except NoPermissionError:
            denied.append(command)
        except NoScriptError:
            pass  # allowed to run EVALSHA; the script was not loaded (SCRIPT LOAD denied)
        except ResponseError as error:
            refused = str(error).lower()  # a script's own command refused
            if "permission" not in refused and "can't run this command" not in refused:
                raise
            denied.append(command)
    if keys is not client:
        keys.close()
    return denied
