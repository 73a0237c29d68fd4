"""The vault's public face: ``AsyncOAuthTokenCache`` and ``OAuthTokenCache``.

:class:`AsyncOAuthTokenCache` (this module, :mod:`oauthvault.vault.async_vault`) is the
hand-written source; ``OAuthTokenCache`` (:mod:`oauthvault.vault.sync_vault`) is generated
from it by ``scripts/async_to_sync.py``, so both flavours have every method and differ only
by ``await``. Each runs the shared, I/O-free flows (:mod:`oauthvault.vault.flows`,
:mod:`~oauthvault.vault.refresh`, :mod:`~oauthvault.vault.pending`): ``_perform`` does one
step's I/O and ``_run`` drives a flow; the hot paths (a local-cache hit, one Redis GET, one
SELECT when there is no cache, a store) are written out inline.

This module is the one public facade of the vault and is longer than the others for that
reason: every public method, with its contract, is here once.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from time import monotonic
from types import TracebackType
from typing import Any, Literal, Self, overload

from oauthvault.audit import Outcome
from oauthvault.cache.keys import cache_key
from oauthvault.cache.redis_async import AsyncRedisTokenCache
from oauthvault.crypto.sealing import open_response
from oauthvault.errors import (
    DecryptionError,
    ProviderError,
    SchemaOutdated,
    StorageUnavailable,
    VaultError,
)
from oauthvault.models import (
    ConnectionQuery,
    StoredConnection,
    TokenKey,
    TokenSet,
)
from oauthvault.oauth.refresh_grant import refresh_grant_async
from oauthvault.oauth.revoke import revoke_grant_async
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.discovery import discover_async
from oauthvault.storage.base import AsyncLockedRow, AsyncTokenStore
from oauthvault.storage.feed import CHANNEL, AsyncChangeFeed, FeedState
from oauthvault.storage.postgres_async import AsyncPostgresTokenStore
from oauthvault.storage.sqlite_async import AsyncSqliteTokenStore
from oauthvault.vault.base import FEED_HEARTBEAT, FEED_PROBE_TIMEOUT
from oauthvault.vault.client_refusals import client_fingerprint
from oauthvault.vault.credential_flows import bearer_tokens
from oauthvault.vault.credentials_async import AsyncCredentialVault
from oauthvault.vault.pending_records_async import AsyncPendingRecords
from oauthvault.vault.results import DeleteOutcome, Readiness, RotationReport
from oauthvault.vault.steps import (
    ClaimPendingRow,
    CommitLock,
    DeleteRow,
    DropCache,
    Emit,
    Flow,
    LeaseWatch,
    LockRow,
    Pause,
    PutPendingRow,
    ReadRow,
    RecordInvalidation,
    RefreshGrant,
    RowState,
    SaveRefreshed,
    Step,
    TakeCached,
    TakeLease,
    TakePendingRow,
    UpdateLocked,
    WriteCache,
    WriteRow,
)

__all__ = ["AsyncOAuthTokenCache"]


class _HeldLock:
    """The row lock a running flow holds, if any (it never outlives :meth:`_run`)."""

    __slots__ = ("lease", "row")

    def __init__(self) -> None:
        self.row: AsyncLockedRow | None = None
        self.lease = LeaseWatch()


class AsyncOAuthTokenCache(AsyncCredentialVault):
    """Encrypted OAuth tokens per (provider, workspace, actor), database first, Redis in front.

    With no arguments, reads ``DATABASE_URL`` (default: an SQLite file ``oauthvault.db``),
    ``REDIS_URL`` (default: none, db-only) and ``OAUTH_ENCRYPTION_KEY`` from the environment;
    keyword arguments override them. Pass ``redis_url=""`` to turn the cache off.

    The blocking flavour connects when it is made; the asyncio flavour on first use (or
    ``open()``). Close either with its context manager or its close method.

    Raises:
        ConfigError: a setting is unusable (named, value never shown).
        StorageUnavailable: the database cannot be reached or has an old schema.
    """

    def _connect(self) -> None:
        clock = self._core.clock
        self._store: AsyncTokenStore
        self._sqlite: AsyncSqliteTokenStore | None = None
        if self._location.kind == "postgres":
            self._store = AsyncPostgresTokenStore(
                self._location,
                connect_timeout=self._settings.db_connect_timeout,
                pool_timeout=self._settings.db_pool_timeout,
                clock=clock,
            )
        else:
            self._store = self._sqlite = AsyncSqliteTokenStore(self._location, clock=clock)
        self._cache: AsyncRedisTokenCache | None = None
        if self._redis_url is not None:
            try:
                self._cache = AsyncRedisTokenCache(
                    self._redis_url,
                    self._store,
                    timeout=self._settings.redis_timeout,
                    breaker=self._new_breaker(),
                )
            except BaseException:
                if True:  # ASYNC
                    pass  # nothing is open yet
                else:
                    self._store.close()  # the blocking store connected when it was made
                raise
        self._opened = False
        self._open_lock = asyncio.Lock()  # one open() at a time (one change feed)
        self._feed: AsyncChangeFeed | None = None
        # SQLite with a local cache: the data_version this thread's connection saw last.
        self._sqlite_seen: threading.local | None = None
        if True:  # ASYNC
            pass  # an event loop cannot block here: the first call (or open()) connects
        else:
            try:
                self.open()
            except BaseException:
                self.close()
                raise

    async def open(self) -> None:
        """Connect to the database and check its schema (done on first use otherwise), and
        start the change feed on PostgreSQL (whatever the local cache setting; the local
        cache is on while the feed is live) or the local cache on SQLite, watching
        ``PRAGMA data_version``."""
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                await self._open_once()

    async def _open_once(self) -> None:
        await self._store.open()
        self._opened = True
        self._key_usage.start()
        local, self._memory = self._new_tiers()
        if isinstance(self._store, AsyncPostgresTokenStore):
            # The feed runs whatever the local cache setting: the versions it hears refuse
            # older Redis values, and while it is not live Redis values are confirmed.
            listen = self._settings.listen_location or self._location
            self._feed = AsyncChangeFeed(
                listen.conninfo,
                listen.description,
                self._memory if local is None else local,
                functools.partial(self._store.notify, CHANNEL),
                connect_timeout=self._settings.db_connect_timeout,
                heartbeat=FEED_HEARTBEAT,
                probe_timeout=FEED_PROBE_TIMEOUT,
            )
            self._local = local
            self._feed.start()
        elif local is not None:  # SQLite: PRAGMA data_version tells of others' commits
            self._sqlite_seen = threading.local()
            self._local = local
            local.resume()

    async def _watch_sqlite(self) -> None:
        """Drop the local cache when another connection committed since this thread's
        connection last looked (and forget tickets taken before)."""
        seen, local, store = self._sqlite_seen, self._local, self._sqlite
        if seen is None or local is None or store is None:
            return
        version = await store.data_version()
        if getattr(seen, "version", None) != version:
            seen.version = version
            local.resume()

    def _feed_state(self) -> FeedState | None:
        return None if self._feed is None else self._feed.state

    # --- the driver ----------------------------------------------------------------------

    async def _run(self, flow: Flow) -> Any:
        """Drive ``flow`` to its end; a row lock it still holds then is rolled back."""
        if not self._opened:
            await self.open()
        held = _HeldLock()
        try:
            step = next(flow)
            while True:
                try:
                    result = await self._perform(step, held)
                except StorageUnavailable as error:
                    step = flow.throw(error)  # the flow may retry (a refresh's save)
                else:
                    step = flow.send(result)
        except StopIteration as done:
            return done.value
        finally:
            if held.row is not None:
                await held.row.rollback()
            unused = held.lease.to_release()
            if unused is not None:
                try:
                    await self._store.release_lease(*unused)
                except StorageUnavailable:
                    pass  # it runs out by itself

    async def _perform(self, step: Step, held: _HeldLock) -> Any:
        """Do one step's I/O and return its result; nothing is decided here."""
        store, cache = self._store, self._cache
        match step:
            case ReadRow():
                return await store.get(step.key)
            case WriteCache() | DropCache():
                return await self._cache_step(step)
            case WriteRow():
                return await store.upsert(step.key, step.row)
            case DeleteRow():
                return await store.delete(step.key)
            case RecordInvalidation():
                return await store.record_invalidations(step.cache_keys)
            case TakeCached():
                return None if cache is None else await cache.take(step.cache_key)
            case PutPendingRow():
                return await store.put_pending(step.record_id, step.sealed, step.expires_at)
            case TakePendingRow():
                taken = await store.take_pending(step.record_id)
                return None if taken is None else taken[0]
            case ClaimPendingRow():
                return await store.claim_pending(step.record_id, step.expires_at)
            case LockRow():
                row = held.row = await store.lock_row(step.key)
                return RowState(row.row, row.status, row.lease, row.last_error)
            case UpdateLocked():
                assert held.row is not None  # noqa: S101 - the flow locks first
                return await held.row.update(status=step.status, last_error=step.last_error)
            case TakeLease():
                assert held.row is not None  # noqa: S101 - the flow locks first
                version = await held.row.take_lease(step.lease)
                held.lease.taken(step.key, step.lease.owner)
                return version
            case SaveRefreshed():
                saved = await store.save_refreshed(step.key, step.row, step.save)
                if saved is not None:
                    held.lease.saved()
                return saved
            case CommitLock():
                locked, held.row = held.row, None
                assert locked is not None  # noqa: S101 - the flow locks first
                return await locked.commit()
            case RefreshGrant() if step.minted is not None:
                held.lease.grant_sent()
                minted = await self._mint(step.provider, step.minted, step.params)
                held.lease.grant_answered(minted.outcome, minted.retry_safe)
                return minted
            case RefreshGrant():
                config = await self._provider(step.provider)  # discovery first: no request yet
                apps_client = step.credentials is None or step.credentials.client_id is None
                fingerprint = client_fingerprint(config)
                if apps_client:  # a refusal of the app's own client: nothing is sent
                    refused = self._client_refusals.held(step.provider, fingerprint, monotonic())
                    if refused is not None:
                        return refused
                held.lease.grant_sent()
                grant = await refresh_grant_async(
                    config,
                    step.refresh_token,
                    timeout=self._refresh_timeout,
                    params=step.params,
                    kept=step.response,
                    credentials=step.credentials,
                    scope=step.scope,
                    window=self._refresh_timing.answer_window,
                )
                held.lease.grant_answered(grant.outcome, grant.retry_safe)
                if apps_client:
                    self._client_refusals.record(step.provider, fingerprint, grant, monotonic())
                return grant
            case Pause():
                return await asyncio.sleep(step.seconds)
            case Emit():
                return self._emit(step.event)
        raise AssertionError(f"unhandled step {step!r}")  # pragma: no cover

    async def _cache_step(self, step: WriteCache | DropCache) -> bool:
        """Write or drop cache entries; whether Redis answered."""
        cache = self._cache
        if cache is None:
            return False
        if isinstance(step, DropCache):
            return await cache.delete(*step.cache_keys)
        if step.version is not None:
            return await cache.write_versioned(step.cache_key, step.version, step.value, step.ttl)
        return await cache.set(step.cache_key, step.value, step.ttl)

    async def _provider(self, name: str) -> ProviderConfig:
        config = self._configured_provider(name)
        if config.spec is None and config.issuer is not None:
            import httpx

            async with httpx.AsyncClient(timeout=self._refresh_timeout) as client:
                spec = await discover_async(config.issuer, client, name=name)
            config = self._remember_provider(config.resolved(spec))
        return config

    # --- the public API ------------------------------------------------------------------

    @property
    def cache_available(self) -> bool:
        """True when Redis is configured and answered its last call."""
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
        *,
        params: Mapping[str, str] | None = None,
        token_response: Mapping[str, Any] | None = None,
    ) -> None:
        """Encrypt and save a connection's tokens, replacing any stored before.

        ``expires_in`` is the access token's lifetime in seconds (``None``: unknown).
        ``params`` are the connection's parameters (returned as ``TokenSet.params``);
        ``token_response`` is the provider's whole token answer, kept sealed and read back
        with :meth:`get_token_response`.

        Raises:
            InvalidInput: an id or token breaks a rule; nothing is written.
            StorageUnavailable: the database write failed; nothing is cached.
        """
        # The store flow (VaultCore.store) performed inline: seal, commit, then cache.
        key, tokens, row = self._sealed_for_store(
            provider,
            workspace_id,
            actor_id,
            access_token,
            refresh_token,
            expires_in,
            scope,
            params,
            token_response,
        )
        if not self._opened:
            await self.open()
        version = await self._store.upsert(key, row)
        step = self._core.cache_step(key, tokens, self._core.clock(), version)
        if step is not None and not await self._cache_step(step):
            await self._store.record_invalidations(step.cache_keys)
        self._heard(key, version)

    async def get_tokens(self, provider: str, workspace_id: str, actor_id: str) -> TokenSet | None:
        """The connection's tokens (a read-only mapping), or ``None`` if none are stored.

        Expired tokens are returned too: the refresh token is what renews them.

        Raises:
            InvalidInput: an id breaks a rule.
            DecryptionError: the stored row does not decrypt (altered, moved, or its key
                is no longer in the ring).
            StorageUnavailable: the database is needed and cannot be reached.
        """
        if self._audit is not None:
            ids = (provider, workspace_id, actor_id)
            try:
                found = await self._get(TokenKey(provider, workspace_id, actor_id))
                if found is not None and found.credentials is not None:
                    found = bearer_tokens(ids, found)
            except VaultError as error:
                self._audit_failure(error, ids, None, None)
                raise
            self._audited(provider, workspace_id, actor_id, "served" if found else "not_found")
            return found
        tokens = None
        if self._local is not None:  # the hottest path: a record in this process
            if self._sqlite_seen is not None:
                await self._watch_sqlite()
            tokens = self._local_hit(provider, workspace_id, actor_id)
        if tokens is None:
            tokens = await self._get_beyond_local(TokenKey(provider, workspace_id, actor_id))
        if tokens is not None and tokens.credentials is not None:
            return bearer_tokens((provider, workspace_id, actor_id), tokens)
        return tokens

    async def _get(self, key: TokenKey) -> TokenSet | None:
        """The tokens from the local cache, Redis, or the database (and cached)."""
        if self._local is not None:
            if self._sqlite_seen is not None:
                await self._watch_sqlite()
            tokens = self._local_hit(key.provider, key.workspace_id, key.actor_id)
            if tokens is not None:
                return tokens
        return await self._get_beyond_local(key)

    async def _get_beyond_local(self, key: TokenKey) -> TokenSet | None:
        """The tokens from Redis or the database, kept locally when that is safe."""
        if not self._opened:
            await self.open()
        local = self._local
        ticket = None if local is None else local.ticket()
        cache = self._cache
        if cache is None:  # db-only: one SELECT, nothing else to orchestrate
            self._reads.database_reads += 1
            row = await self._store.get(key)
            if row is None:
                return None
            try:
                found = self._core.open_row(key, row)
            except DecryptionError:
                marked: TokenSet | None = await self._run(self._core.undecryptable(key))
                return marked
            self._keep_local(key, found, ticket)
            return found
        # The hot path without a local cache: one Redis GET, no flow machinery.
        name = cache_key(key)
        cached = await cache.get(name)
        if cached is not None:
            tokens = self._from_redis(key, cached)
            if tokens is not None and not self._redis_trusted():
                tokens = await self._confirmed(key, tokens)
            if tokens is not None:
                self._served_from_redis(key, tokens, ticket)
                return tokens
        self._reads.redis_misses += 1
        self._reads.database_reads += 1
        result: TokenSet | None = await self._run(self._core.get_from_database(key, name))
        if result is not None:
            self._keep_local(key, result, ticket)
        return result

    async def _confirmed(self, key: TokenKey, tokens: TokenSet) -> TokenSet | None:
        """A Redis value read while no change feed is live (SQLite, a feed down or behind
        a transaction pooler): served only if the row is no newer (``None``: read the row).
        With the database unreachable, the value is the newest this process can know."""
        try:
            row = await self._store.get(key)
        except StorageUnavailable:
            return tokens
        if self._outdated_by_row(key, tokens, None if row is None else row.version):
            return None
        return tokens

    async def get_stored_tokens(
        self, provider: str, workspace_id: str, actor_id: str
    ) -> TokenSet | None:
        """Like :meth:`get_tokens`, straight from the database: the cache can neither hide
        a row that no longer decrypts nor serve one that is gone.

        Raises: as :meth:`get_tokens`.
        """
        key = TokenKey(provider, workspace_id, actor_id)
        await self.open()
        row = await self._store.get(key)
        return None if row is None else self._core.open_row(key, row)

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
            return await self._delete(key)
        tokens = await self._get(key)
        revoked = None
        if tokens is not None and tokens.credentials is not None:
            revoked = await self._revoke_credential(key, tokens)
        elif tokens is not None:
            config = await self._provider(provider)
            revoked = await revoke_grant_async(config, tokens, timeout=self._refresh_timeout)
        return DeleteOutcome(await self._delete(key), revoked)

    async def _delete(self, key: TokenKey) -> bool:
        version: int | None = await self._run(self._core.delete(key))
        self._heard(key, version, deleted=True)
        return version is not None

    async def store_client_credentials(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
        params: Mapping[str, object] | None = None,
        caller: str | None = None,
        source: str | None = None,
    ) -> TokenSet:
        """Create (or replace) a client-credentials connection and fetch its first token.

        Its tokens come from the ``client_credentials`` grant with ``client_id`` and
        ``client_secret`` (a customer's own client, stored sealed like tokens) or, when both
        are ``None``, the configured app's. ``params`` are its connection parameters, as a
        connect link's (an Okta ``domain``, a Salesforce ``hostname``). It is renewed like
        any connection, exactly once across processes, and listed, read and deleted (and
        revoked) like the others. ``caller`` and ``source`` are audited for the first token,
        as for :meth:`refresh_tokens`.

        Raises:
            InvalidInput: an id, the credentials or ``scope`` break a rule, or the catalog
                provider does not document the grant.
            UnknownProvider: ``provider`` is not configured.
            ReauthorizationRequired: the provider refused the credentials; nothing is kept
                (a connection stored before under these ids is put back).
            ProviderError: the provider could not be reached; likewise.
        """
        key = TokenKey(provider, workspace_id, actor_id)
        config = await self._provider(provider)
        await self.open()
        previous = await self._store.get(key)  # put back if the first token fails
        self._heard(
            key,
            await self._run(
                self._client_credentials_row(config, key, client_id, client_secret, scope, params)
            ),
        )
        try:
            return await self.refresh_tokens(
                provider, workspace_id, actor_id, caller=caller, source=source
            )
        except ProviderError:
            if previous is None:
                await self.delete_tokens(provider, workspace_id, actor_id)
            else:
                self._heard(key, await self._run(self._core.restore(key, previous)))
            raise

    async def get_token_response(
        self, provider: str, workspace_id: str, actor_id: str
    ) -> dict[str, Any] | None:
        """The provider's whole last token answer for this connection (decrypted), or
        ``None`` when nothing is stored or no answer was kept (tokens stored by hand).

        It may hold secrets (an id_token, a second token): ask for it only when needed.

        Raises:
            InvalidInput: an id breaks a rule.
            DecryptionError: the stored answer does not decrypt.
            StorageUnavailable: the database cannot be reached.
        """
        key = TokenKey(provider, workspace_id, actor_id)
        await self.open()
        row = await self._store.get(key)
        return None if row is None else open_response(self._core.keyring, key, row)

    async def get_access_token(
        self, provider: str, workspace_id: str, actor_id: str, min_ttl: float = 60
    ) -> str:
        """An access token valid for at least ``min_ttl`` seconds, refreshing it first when
        needed (once, however many threads, processes or hosts ask at the same time).

        Raises:
            TokenNotFound: nothing is stored for the connection.
            ReauthorizationRequired: the grant is gone; the user must connect again.
            ProviderError: the provider failed and the current token has expired.
        """
        tokens = await self.get_fresh_tokens(provider, workspace_id, actor_id, min_ttl)
        return tokens.access_token

    async def get_fresh_tokens(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        min_ttl: float = 60,
        *,
        caller: str | None = None,
        source: str | None = None,
    ) -> TokenSet:
        """:meth:`get_access_token`, returning the whole :class:`TokenSet`. With an audit
        trail (``audit_caller=``), the read is recorded as by ``caller`` (default: the
        vault's ``audit_caller``) from ``source`` (a client address, if any)."""
        if self._audit is None:
            return (await self._fresh(provider, workspace_id, actor_id, min_ttl))[0]
        try:
            tokens, refreshed = await self._fresh(provider, workspace_id, actor_id, min_ttl)
        except VaultError as error:
            self._audit_failure(error, (provider, workspace_id, actor_id), caller, source)
            raise
        outcome: Outcome = "refreshed" if refreshed else "served"
        self._audited(provider, workspace_id, actor_id, outcome, caller, source)
        return tokens

    async def _fresh(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        min_ttl: float,
        any_kind: bool = False,
    ) -> tuple[TokenSet, bool]:
        """The tokens, and whether this call refreshed them (``any_kind``: a static
        credential's row too, which has no token)."""
        tokens = None
        if self._local is not None:  # the hottest path, without building a TokenKey
            if self._sqlite_seen is not None:
                await self._watch_sqlite()
            tokens = self._local_hit(provider, workspace_id, actor_id)
            if tokens is not None and tokens.lasts(min_ttl, self._core.clock()):
                if tokens.credentials is not None and not any_kind:
                    bearer_tokens((provider, workspace_id, actor_id), tokens)
                return tokens, False
        key = TokenKey(provider, workspace_id, actor_id)
        if tokens is None:
            tokens = await self._get_beyond_local(key)
            if self._fresh_enough(key, tokens, min_ttl):
                assert tokens is not None  # noqa: S101 - _fresh_enough raises for None
                if tokens.credentials is not None and not any_kind:
                    bearer_tokens((provider, workspace_id, actor_id), tokens)
                return tokens, False
        refreshed: TokenSet = await self._run(
            self._refresh_flow(key, min_ttl=min_ttl, force=False, seen=tokens)
        )
        self._heard(key, refreshed.version)
        return refreshed, True

    async def refresh_tokens(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        *,
        caller: str | None = None,
        source: str | None = None,
    ) -> TokenSet:
        """Refresh now (unless another worker refreshed since this call read the tokens).
        Audited as :meth:`get_fresh_tokens`.

        Raises: as :meth:`get_access_token`.
        """
        try:
            key = TokenKey(provider, workspace_id, actor_id)
            seen = await self._get(key)
            refreshed: TokenSet = await self._run(
                self._refresh_flow(key, min_ttl=0, force=True, seen=seen)
            )
        except VaultError as error:
            self._audit_failure(error, (provider, workspace_id, actor_id), caller, source)
            raise
        self._heard(key, refreshed.version)
        self._audited(provider, workspace_id, actor_id, "refreshed", caller, source)
        return refreshed

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        """Stored connections by (provider, status), for metrics."""
        await self.open()
        return await self._store.count_by_status()

    async def readiness(self) -> Readiness:
        """Whether the vault can serve (the database answers with this version's schema),
        and the state of the cache, the local cache and provider discovery."""
        revision: str | None = None
        try:
            await self.open()
            revision = await self._store.schema_revision()
        except SchemaOutdated:
            reachable = True  # reported as old_schema
        except StorageUnavailable:
            reachable = False
        else:
            reachable = True
        cache_up = self._cache is not None and await self._cache.check()
        return self._readiness(revision, reachable=reachable, cache_up=cache_up)

    async def list_connections(
        self,
        provider: str | None = None,
        workspace_id: str | None = None,
        limit: int = 100,
        *,
        actor_id: str | None = None,
        status: str | None = None,
        after: TokenKey | None = None,
    ) -> list[StoredConnection]:
        """Stored connections (never their tokens), optionally filtered (``status``: a
        :class:`ConnectionStatus` value), sorted by ids; pass the last one of a page as
        ``after`` for the next page. ``has_refresh_token`` says whether the connection
        renews itself: false for an API key or a password.

        Raises:
            InvalidInput: a filter, ``after`` or ``limit`` (1 to 100,000) is malformed.
        """
        query = ConnectionQuery(provider, workspace_id, actor_id, status, after, limit)
        await self.open()
        return self._listed(await self._store.list_connections(query))

    async def expiring_connections(self, within: float, limit: int = 100) -> list[TokenKey]:
        """Refreshable connections whose access token expires within ``within`` seconds,
        soonest first."""
        await self.open()
        before = self._core.clock() + timedelta(seconds=within)
        return await self._store.expiring_connections(before, limit)

    async def idle_connections(self, limit: int = 100) -> list[TokenKey]:
        """Refreshable connections whose refresh token has gone unused for half of their
        provider's idle window (catalog ``refresh_token_idle_expiry_days``)."""
        await self.open()
        found: list[TokenKey] = []
        for provider, before in self._idle_cutoffs():
            found.extend(await self._store.idle_connections(provider, before, limit))
        return found

    def pending_records(self, kind: str, ttl: int) -> AsyncPendingRecords:
        """One-time records of ``kind`` (sealed; Redis, else the database) living ``ttl``
        seconds: what OAuth states and connect links are kept in."""
        return AsyncPendingRecords(self._core, self._run, kind, ttl)

    async def count_by_key_id(self) -> dict[str, int]:
        """How many rows each key id sealed; rotation is done when only the newest is left."""
        await self.open()
        return await self._store.count_by_key_id()

    async def rotate_key(
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
        await self.open()
        rotated = 0
        undecryptable: list[TokenKey] = []
        after: str | None = None
        primary = self.keyring.primary.key_id_hex
        while True:
            batch = await self._store.reseal_batch(primary, after, batch_size, self._core.reseal)
            if batch.last_row_id is None:
                break
            after = batch.last_row_id
            rotated += len(batch.rotated)
            undecryptable.extend(batch.undecryptable)
            await self._run(self._core.drop_cached(batch.rotated))
            if self._local is not None:
                self._local.clear()
            if on_batch is not None:
                on_batch(rotated)
        return RotationReport(rotated, undecryptable, await self.count_by_key_id())

    async def aclose(self) -> None:
        """Close database connections, the change feed and the Redis client (after writing
        the audit entries and the encryption counts still queued)."""
        try:
            if self._audit is not None:
                await asyncio.to_thread(self._audit.close)
            await asyncio.to_thread(self._key_usage.close)
            self._local, self._sqlite_seen = None, None  # a reopened vault starts afresh
            if self._feed is not None:
                feed, self._feed = self._feed, None
                await feed.stop()
            if self._cache is not None:
                await self._cache.aclose()
        finally:
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
