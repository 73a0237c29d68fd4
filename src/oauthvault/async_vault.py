"""``AsyncOAuthTokenCache``: the asyncio twin of ``OAuthTokenCache``.

Same arguments, same methods, same flows as :class:`~oauthvault.vault.OAuthTokenCache`;
only the driver differs, performing each step with ``await``.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Literal, Self, overload

from oauthvault.cache.keys import cache_key, pending_cache_key
from oauthvault.cache.redis import AsyncRedisTokenCache
from oauthvault.errors import TokenNotFound
from oauthvault.flows.discovery import discover_async
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
from oauthvault.flows.refresh_grant import refresh_grant_async
from oauthvault.flows.revoke import revoke_grant_async
from oauthvault.models import TokenKey, TokenSet
from oauthvault.steps import (
    DeleteRow,
    DropCache,
    Flow,
    ReadRow,
    RecordInvalidation,
    SavePending,
    Step,
    TakePending,
    WriteCache,
    WriteRow,
    pending_ttl,
)
from oauthvault.storage.base import (
    AsyncLockedRow,
    AsyncTokenStore,
    ConnectionInfo,
)
from oauthvault.storage.postgres import AsyncPostgresTokenStore
from oauthvault.storage.sqlite import AsyncSqliteTokenStore
from oauthvault.vault_base import DeleteOutcome, VaultBase

__all__ = ["AsyncOAuthTokenCache"]


class AsyncOAuthTokenCache(VaultBase):
    """The asyncio twin of :class:`OAuthTokenCache`: same arguments, same methods, awaited.

    Connections open on first use (or ``await vault.open()``); use ``async with`` or
    ``await vault.aclose()`` to release them.
    """

    def _connect(self) -> None:
        self._store: AsyncTokenStore
        if self._location.kind == "postgres":
            self._store = AsyncPostgresTokenStore(self._location)
        else:
            self._store = AsyncSqliteTokenStore(self._location)
        self._cache: AsyncRedisTokenCache | None = None
        if self._redis_url is not None:
            self._cache = AsyncRedisTokenCache(
                self._redis_url,
                self._store,
                timeout=self._settings.redis_timeout,
                breaker=self._new_breaker(),
            )
        self._opened = False

    async def open(self) -> None:
        """Connect to the database and check its schema (done on first use otherwise)."""
        if not self._opened:
            await self._store.open()
            self._opened = True

    async def _run(self, flow: Flow) -> Any:
        if not self._opened:
            await self.open()
        try:
            step = next(flow)
            while True:
                step = flow.send(await self._perform(step))
        except StopIteration as done:
            return done.value

    async def _perform(self, step: Step) -> Any:
        cache = self._cache
        match step:
            case WriteCache(name, value, ttl, only_if_absent) if cache is not None:
                return await cache.set(name, value, ttl, only_if_absent=only_if_absent)
            case DropCache(name) if cache is not None:
                return await cache.delete(name)
            case ReadRow(key):
                return await self._store.get(key)
            case WriteRow(key, row):
                return await self._store.upsert(key, row)
            case DeleteRow(key):
                return await self._store.delete(key)
            case RecordInvalidation(name):
                return await self._store.record_invalidation(name)
            case SavePending(record_id, sealed, expires_at):
                ttl = pending_ttl(expires_at, self._core.clock())
                if cache is not None and await cache.set(
                    pending_cache_key(record_id), sealed.encode(), ttl
                ):
                    return None
                return await self._store.put_pending(record_id, sealed, expires_at)
            case TakePending(record_id):
                if cache is not None:
                    found = await cache.take(pending_cache_key(record_id))
                    if found is not None:
                        return found.decode()
                taken = await self._store.take_pending(record_id)
                return None if taken is None else taken[0]
        raise AssertionError(f"unhandled step {step!r}")  # pragma: no cover

    @property
    def cache_available(self) -> bool:
        return self._cache is not None and self._cache.is_available

    async def store_tokens(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        access_token: str,
        refresh_token: str | None = None,
        expires_in: int | None = None,
        scope: str | None = None,
    ) -> None:
        """See :meth:`OAuthTokenCache.store_tokens`."""
        await self._run(
            self._store_flow(
                provider, workspace_id, actor_id, access_token, refresh_token, expires_in, scope
            )
        )

    async def get_tokens(self, provider: str, workspace_id: str, actor_id: str) -> TokenSet | None:
        """See :meth:`OAuthTokenCache.get_tokens`."""
        key = TokenKey(provider, workspace_id, actor_id)
        name = ""
        cached = None
        if self._cache is not None:
            if not self._opened:
                await self.open()
            name = cache_key(key)
            cached = await self._cache.get(name)
            if cached is not None:
                tokens = self._core.open_cached(key, cached)
                if tokens is not None:
                    return tokens
        result: TokenSet | None = await self._run(
            self._core.get_from_database(key, name, replace_cached=cached is not None)
        )
        return result

    @overload
    async def delete_tokens(
        self, provider: str, workspace_id: str, actor_id: str, *, revoke: Literal[False] = False
    ) -> bool: ...

    @overload
    async def delete_tokens(
        self, provider: str, workspace_id: str, actor_id: str, *, revoke: Literal[True]
    ) -> DeleteOutcome: ...

    async def delete_tokens(
        self, provider: str, workspace_id: str, actor_id: str, *, revoke: bool = False
    ) -> bool | DeleteOutcome:
        """See :meth:`OAuthTokenCache.delete_tokens`."""
        key = TokenKey(provider, workspace_id, actor_id)
        if not revoke:
            deleted: bool = await self._run(self._core.delete(key))
            return deleted
        tokens = await self.get_tokens(provider, workspace_id, actor_id)
        revoked = None
        if tokens is not None:
            revoked = await revoke_grant_async(
                await self._provider(provider), tokens, timeout=self._refresh_timeout
            )
        return DeleteOutcome(await self._run(self._core.delete(key)), revoked)

    async def get_access_token(
        self, provider: str, workspace_id: str, actor_id: str, min_ttl: float = 60
    ) -> str:
        """See :meth:`OAuthTokenCache.get_access_token`."""
        tokens = await self.get_fresh_tokens(provider, workspace_id, actor_id, min_ttl)
        return tokens.access_token

    async def get_fresh_tokens(
        self, provider: str, workspace_id: str, actor_id: str, min_ttl: float = 60
    ) -> TokenSet:
        """See :meth:`OAuthTokenCache.get_fresh_tokens`."""
        tokens = await self.get_tokens(provider, workspace_id, actor_id)
        if tokens is None:
            raise TokenNotFound(f"no tokens stored for {provider}/{workspace_id}/{actor_id}")
        if is_fresh(tokens, self._core.clock(), min_ttl):
            return tokens
        key = TokenKey(provider, workspace_id, actor_id)
        refreshed: TokenSet = await self._run_locked(
            self._refresh_flow(key, min_ttl=min_ttl, force=False, seen=tokens)
        )
        return refreshed

    async def refresh_tokens(self, provider: str, workspace_id: str, actor_id: str) -> TokenSet:
        """See :meth:`OAuthTokenCache.refresh_tokens`."""
        seen = await self.get_tokens(provider, workspace_id, actor_id)
        key = TokenKey(provider, workspace_id, actor_id)
        refreshed: TokenSet = await self._run_locked(
            self._refresh_flow(key, min_ttl=0, force=True, seen=seen)
        )
        return refreshed

    async def _provider(self, name: str) -> ProviderConfig:
        config = self._configured_provider(name)
        if config.spec is None and config.issuer is not None:
            import httpx

            async with httpx.AsyncClient(timeout=self._refresh_timeout) as client:
                config = config.resolved(await discover_async(config.issuer, client, name=name))
            self._provider_configs()[name] = config
        return config

    async def _run_locked(self, flow: RefreshFlow) -> Any:
        """See :meth:`OAuthTokenCache._run_locked`."""
        if not self._opened:
            await self.open()
        locked: AsyncLockedRow | None = None
        try:
            step = next(flow)
            while True:
                result: Any = None
                if isinstance(step, LockRow):
                    locked = await self._store.lock_row(step.key)
                    result = (locked.row, locked.status)
                elif isinstance(step, UpdateLocked):
                    assert locked is not None  # noqa: S101 - the flow locks first
                    await locked.update(
                        step.row,
                        status=step.status,
                        last_error=step.last_error,
                        refreshed_at=step.refreshed_at,
                    )
                elif isinstance(step, CommitLock):
                    assert locked is not None  # noqa: S101
                    held_async: AsyncLockedRow = locked
                    locked = None
                    await held_async.commit()
                elif isinstance(step, RefreshGrant):
                    result = await refresh_grant_async(
                        await self._provider(step.provider),
                        step.refresh_token,
                        timeout=self._refresh_timeout,
                    )
                elif isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                elif isinstance(step, Emit):
                    self._emit(step.event)
                else:
                    result = await self._perform(step)
                step = flow.send(result)
        except StopIteration as done:
            return done.value
        finally:
            if locked is not None:
                await locked.rollback()

    async def list_connections(
        self, provider: str | None = None, workspace_id: str | None = None, limit: int = 100
    ) -> list[ConnectionInfo]:
        """See :meth:`OAuthTokenCache.list_connections`."""
        await self.open()
        return await self._store.list_connections(provider, workspace_id, limit)

    async def aclose(self) -> None:
        """Close database connections and the Redis client."""
        if self._cache is not None:
            await self._cache.aclose()
        await self._store.close()
        self._opened = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
