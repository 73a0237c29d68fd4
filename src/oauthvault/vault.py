"""``OAuthTokenCache``: the vault's public face (blocking I/O).

It runs the shared flows (:mod:`oauthvault.steps`, :mod:`oauthvault.flows.refresh`) with
blocking calls; :class:`~oauthvault.async_vault.AsyncOAuthTokenCache` runs the same flows
with ``await``. Configuration goes through :class:`~oauthvault.config.Settings`: explicit
arguments first, then the environment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, overload

from oauthvault.cache.keys import cache_key, pending_cache_key
from oauthvault.cache.redis import RedisTokenCache
from oauthvault.errors import TokenNotFound
from oauthvault.flows.discovery import discover
from oauthvault.flows.provider_config import ProviderConfig
from oauthvault.flows.refresh import (
    CommitLock,
    Emit,
    LockRow,
    Pause,
    RefreshFlow,
    RefreshGrant,
    UpdateLocked,
    is_fresh,
)
from oauthvault.flows.refresh_grant import refresh_grant
from oauthvault.flows.revoke import revoke_grant
from oauthvault.models import TokenKey, TokenSet
from oauthvault.records import open_row
from oauthvault.steps import (
    DeleteRow,
    DropCache,
    Flow,
    ReadRow,
    RecordInvalidation,
    SavePending,
    TakePending,
    WriteCache,
    WriteRow,
    pending_ttl,
)
from oauthvault.storage.base import (
    ConnectionInfo,
    LockedRow,
    TokenStore,
)
from oauthvault.storage.postgres import PostgresTokenStore
from oauthvault.storage.sqlite import SqliteTokenStore
from oauthvault.vault_base import BackendMode, DeleteOutcome, RotationReport, VaultBase

__all__ = ["BackendMode", "DeleteOutcome", "OAuthTokenCache", "RotationReport"]

logger = logging.getLogger("oauthvault.vault")


class OAuthTokenCache(VaultBase):
    """Encrypted OAuth tokens per (provider, workspace, actor), database first, Redis in front.

    With no arguments, reads ``DATABASE_URL`` (default: an SQLite file ``oauthvault.db``),
    ``REDIS_URL`` (default: none, db-only) and ``OAUTH_ENCRYPTION_KEY`` from the environment;
    keyword arguments override them. Pass ``redis_url=""`` to turn the cache off.

    Raises:
        ConfigError: a setting is unusable (named, value never shown).
        StorageUnavailable: the database cannot be reached or has an old schema.
    """

    def _connect(self) -> None:
        self._store: TokenStore
        if self._location.kind == "postgres":
            self._store = PostgresTokenStore(self._location)
        else:
            self._store = SqliteTokenStore(self._location)
        self._cache: RedisTokenCache | None = None
        if self._redis_url is not None:
            self._cache = RedisTokenCache(
                self._redis_url,
                self._store,
                timeout=self._settings.redis_timeout,
                breaker=self._new_breaker(),
            )
        self._handlers = self._step_handlers()

    def _run(self, flow: Flow) -> Any:
        handlers = self._handlers
        try:
            step = next(flow)
            while True:
                step = flow.send(handlers[type(step)](step))
        except StopIteration as done:
            return done.value

    def _step_handlers(self) -> dict[type, Callable[[Any], Any]]:
        """How each step is performed: one small function per step type."""
        store, cache = self._store, self._cache
        handlers: dict[type, Callable[[Any], Any]] = {
            ReadRow: lambda step: store.get(step.key),
            WriteRow: lambda step: store.upsert(step.key, step.row),
            DeleteRow: lambda step: store.delete(step.key),
            RecordInvalidation: lambda step: store.record_invalidation(step.cache_key),
        }
        if cache is not None:
            handlers[WriteCache] = lambda step: cache.set(
                step.cache_key, step.value, step.ttl, only_if_absent=step.only_if_absent
            )
            handlers[DropCache] = lambda step: cache.delete(step.cache_key)
        handlers[SavePending] = self._save_pending
        handlers[TakePending] = self._take_pending
        return handlers

    def _save_pending(self, step: SavePending) -> None:
        ttl = pending_ttl(step.expires_at, self._core.clock())
        if self._cache is not None and self._cache.set(
            pending_cache_key(step.record_id), step.sealed.encode(), ttl
        ):
            return
        self._store.put_pending(step.record_id, step.sealed, step.expires_at)

    def _take_pending(self, step: TakePending) -> str | None:
        if self._cache is not None:
            found = self._cache.take(pending_cache_key(step.record_id))
            if found is not None:
                return found.decode()
        taken = self._store.take_pending(step.record_id)
        return None if taken is None else taken[0]

    @property
    def cache_available(self) -> bool:
        """True when Redis is configured and answered its last call."""
        return self._cache is not None and self._cache.is_available

    def store_tokens(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        access_token: str,
        refresh_token: str | None = None,
        expires_in: int | None = None,
        scope: str | None = None,
    ) -> None:
        """Encrypt and save a connection's tokens, replacing any stored before.

        ``expires_in`` is the access token's lifetime in seconds (``None``: unknown).

        Raises:
            InvalidInput: an id or token breaks a rule; nothing is written.
            StorageUnavailable: the database write failed; nothing is cached.
        """
        self._run(
            self._store_flow(
                provider, workspace_id, actor_id, access_token, refresh_token, expires_in, scope
            )
        )

    def get_tokens(self, provider: str, workspace_id: str, actor_id: str) -> TokenSet | None:
        """The connection's tokens (a read-only mapping), or ``None`` if none are stored.

        Expired tokens are returned too: the refresh token is what renews them.

        Raises:
            InvalidInput: an id breaks a rule.
            DecryptionError: the stored row does not decrypt (altered, moved, or its key
                is no longer in the ring).
            StorageUnavailable: the database is needed and cannot be reached.
        """
        key = TokenKey(provider, workspace_id, actor_id)
        cache = self._cache
        if cache is None:  # db-only: one SELECT, nothing else to orchestrate
            row = self._store.get(key)
            return None if row is None else open_row(self._core.keyring, key, row)
        # The hot path: one Redis GET, no flow machinery.
        name = cache_key(key)
        cached = cache.get(name)
        if cached is not None:
            tokens = self._core.open_cached(key, cached)
            if tokens is not None:
                return tokens
        result: TokenSet | None = self._run(
            self._core.get_from_database(key, name, replace_cached=cached is not None)
        )
        return result

    @overload
    def delete_tokens(
        self, provider: str, workspace_id: str, actor_id: str, *, revoke: Literal[False] = False
    ) -> bool: ...

    @overload
    def delete_tokens(
        self, provider: str, workspace_id: str, actor_id: str, *, revoke: Literal[True]
    ) -> DeleteOutcome: ...

    def delete_tokens(
        self, provider: str, workspace_id: str, actor_id: str, *, revoke: bool = False
    ) -> bool | DeleteOutcome:
        """Remove a connection from the database and the cache. True if one was stored.

        With ``revoke=True`` the provider is first asked to revoke the grant (RFC 7009); the
        connection is deleted locally whatever it answers, and a :class:`DeleteOutcome`
        says both.

        Raises:
            InvalidInput: an id breaks a rule.
            UnknownProvider: ``revoke=True`` for a provider that is not configured.
            StorageUnavailable: the database cannot be reached; nothing is deleted.
        """
        key = TokenKey(provider, workspace_id, actor_id)
        if not revoke:
            deleted: bool = self._run(self._core.delete(key))
            return deleted
        tokens = self.get_tokens(provider, workspace_id, actor_id)
        revoked = None
        if tokens is not None:
            revoked = revoke_grant(self._provider(provider), tokens, timeout=self._refresh_timeout)
        return DeleteOutcome(self._run(self._core.delete(key)), revoked)

    def get_access_token(
        self, provider: str, workspace_id: str, actor_id: str, min_ttl: float = 60
    ) -> str:
        """An access token valid for at least ``min_ttl`` seconds, refreshing it first when
        needed (once, however many threads, processes or hosts ask at the same time).

        Raises:
            TokenNotFound: nothing is stored for the connection.
            ReauthorizationRequired: the grant is gone; the user must connect again.
            ProviderError: the provider failed and the current token has expired.
        """
        return self.get_fresh_tokens(provider, workspace_id, actor_id, min_ttl).access_token

    def get_fresh_tokens(
        self, provider: str, workspace_id: str, actor_id: str, min_ttl: float = 60
    ) -> TokenSet:
        """:meth:`get_access_token`, returning the whole :class:`TokenSet`."""
        tokens = self.get_tokens(provider, workspace_id, actor_id)
        if tokens is None:
            raise TokenNotFound(f"no tokens stored for {provider}/{workspace_id}/{actor_id}")
        if is_fresh(tokens, self._core.clock(), min_ttl):
            return tokens
        key = TokenKey(provider, workspace_id, actor_id)
        refreshed: TokenSet = self._run_locked(
            self._refresh_flow(key, min_ttl=min_ttl, force=False, seen=tokens)
        )
        return refreshed

    def refresh_tokens(self, provider: str, workspace_id: str, actor_id: str) -> TokenSet:
        """Refresh now (unless another worker refreshed since this call read the tokens).

        Raises: as :meth:`get_access_token`.
        """
        seen = self.get_tokens(provider, workspace_id, actor_id)
        key = TokenKey(provider, workspace_id, actor_id)
        refreshed: TokenSet = self._run_locked(
            self._refresh_flow(key, min_ttl=0, force=True, seen=seen)
        )
        return refreshed

    def _provider(self, name: str) -> ProviderConfig:
        config = self._configured_provider(name)
        if config.spec is None and config.issuer is not None:
            import httpx

            with httpx.Client(timeout=self._refresh_timeout) as client:
                config = config.resolved(discover(config.issuer, client, name=name))
            self._provider_configs()[name] = config
        return config

    def _run_locked(self, flow: RefreshFlow) -> Any:
        """Drive a refresh flow: the row lock lives only inside this call."""
        handlers = self._handlers
        locked: LockedRow | None = None
        try:
            step = next(flow)
            while True:
                result: Any = None
                if isinstance(step, LockRow):
                    locked = self._store.lock_row(step.key)
                    result = (locked.row, locked.status)
                elif isinstance(step, UpdateLocked):
                    assert locked is not None  # noqa: S101 - the flow locks first
                    locked.update(
                        step.row,
                        status=step.status,
                        last_error=step.last_error,
                        refreshed_at=step.refreshed_at,
                    )
                elif isinstance(step, CommitLock):
                    assert locked is not None  # noqa: S101
                    held: LockedRow = locked
                    locked = None
                    held.commit()
                elif isinstance(step, RefreshGrant):
                    result = refresh_grant(
                        self._provider(step.provider),
                        step.refresh_token,
                        timeout=self._refresh_timeout,
                    )
                elif isinstance(step, Pause):
                    time.sleep(step.seconds)
                elif isinstance(step, Emit):
                    self._emit(step.event)
                else:
                    result = handlers[type(step)](step)
                step = flow.send(result)
        except StopIteration as done:
            return done.value
        finally:
            if locked is not None:
                locked.rollback()

    def list_connections(
        self, provider: str | None = None, workspace_id: str | None = None, limit: int = 100
    ) -> list[ConnectionInfo]:
        """Stored connections (never their tokens), optionally filtered, sorted by ids."""
        return self._store.list_connections(provider, workspace_id, limit)

    def count_by_key_id(self) -> dict[str, int]:
        """How many rows each key id sealed; rotation is done when only the newest is left."""
        return self._store.count_by_key_id()

    def rotate_key(
        self,
        batch_size: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> RotationReport:
        """Re-seal every row not sealed with the newest key, one committed batch at a time.

        Online and resumable: rows sealed with an older key stay readable throughout, and a
        run that is killed leaves every row readable; running it again finishes the job.
        Cache entries of re-sealed rows are dropped so the cache stops using the old key.
        ``on_batch`` is called with the running count after each batch.
        """
        rotated = 0
        undecryptable: list[TokenKey] = []
        after: str | None = None
        primary = self.keyring.primary.key_id_hex
        while True:
            batch = self._store.reseal_batch(primary, after, batch_size, self._core.reseal)
            if batch.last_row_id is None:
                break
            after = batch.last_row_id
            rotated += len(batch.rotated)
            undecryptable.extend(batch.undecryptable)
            self._drop_cached(batch.rotated)
            if on_batch is not None:
                on_batch(rotated)
        return RotationReport(rotated, undecryptable, self.count_by_key_id())

    def _drop_cached(self, keys: list[TokenKey]) -> None:
        if self._cache is None or not keys:
            return
        names = [cache_key(key) for key in keys]
        if not self._cache.delete(*names):
            for name in names:
                self._store.record_invalidation(name)

    def close(self) -> None:
        """Close database connections and the Redis client."""
        if self._cache is not None:
            self._cache.close()
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
