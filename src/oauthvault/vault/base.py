"""What both vaults share: configuration, key ring, provider configs, events, flows.

No I/O here: :class:`~oauthvault.vault.OAuthTokenCache` and
:class:`~oauthvault.vault.AsyncOAuthTokenCache` perform the steps the flows yield.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar

from oauthvault.audit import AuditTrail, Outcome, outcome_of
from oauthvault.cache.breaker import CircuitBreaker
from oauthvault.cache.local import LocalCache
from oauthvault.cache.versions import VersionMemory
from oauthvault.config import Settings, resolve_keyring
from oauthvault.crypto.keyring import KeyRing
from oauthvault.crypto.sealing import SealedRow, seal_row
from oauthvault.errors import (
    InvalidCredentials,
    InvalidInput,
    ProviderError,
    TokenNotFound,
    UnknownProvider,
    VaultError,
)
from oauthvault.models import (
    NO_PARAMS,
    ClientCredentials,
    ConnectionEvent,
    ConnectionStatus,
    Credentials,
    StoredConnection,
    TokenKey,
    TokenSet,
    validate_client_credentials,
    validate_params,
    validate_response,
    validate_scope,
    validate_tokens,
)
from oauthvault.oauth.verification import Verdict
from oauthvault.providers.api_targets import ApiTarget
from oauthvault.providers.catalog import load_catalog
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.credential_apps import CredentialApp
from oauthvault.providers.credentials import (
    CredentialSpec,
    Placement,
    credential_entry,
)
from oauthvault.providers.params import ConnectionParam, check_given_params
from oauthvault.storage.key_usage import KeyUsageRecorder
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.migrations import HEAD_REVISION
from oauthvault.vault.client_refusals import ClientRefusals
from oauthvault.vault.events import EventSink
from oauthvault.vault.flows import VaultCore
from oauthvault.vault.refresh import (
    RefreshFlow,
    RefreshTiming,
    RetryPolicy,
    refresh_flow,
)
from oauthvault.vault.results import BackendMode, ReadCounters, Readiness
from oauthvault.vault.steps import Flow
from oauthvault.vault.tiers import ReadTiers

__all__ = ["FEED_HEARTBEAT", "FEED_PROBE_TIMEOUT", "BoundedMemo", "VaultBase"]

_Kept = TypeVar("_Kept")

#: The change feed probes itself this often (seconds), and gives a probe this long to
#: come back before it stops trusting its connection (and the local cache with it).
FEED_HEARTBEAT = 1.0
FEED_PROBE_TIMEOUT = 1.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


_HOST = socket.gethostname()[:64]


class BoundedMemo(Generic[_Kept]):
    """At most ``size`` values by key; the oldest goes when a new one comes (no I/O, no
    lock: a lost write only costs a recomputation)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: dict[object, _Kept] = {}

    def get(self, key: object) -> _Kept | None:
        return self._values.get(key)

    def keep(self, key: object, value: _Kept) -> None:
        if len(self._values) >= self._size:
            self._values.pop(next(iter(self._values)), None)
        self._values[key] = value


def _credential_params(spec: CredentialSpec | None) -> tuple[ConnectionParam, ...]:
    """What every read checks a credential connection's parameters against: its link
    parameters, and those taken from a field (by their pattern)."""
    if spec is None:
        return ()
    derived = tuple(
        ConnectionParam(each.name, each.label, "link", pattern=each.pattern)
        for each in spec.derived_params
    )
    return spec.connection_params + derived


def _lease_owner() -> str:
    """Who holds a refresh lease: host, process and a random part (one per refresh)."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


class VaultBase(ReadTiers):
    """Configuration shared by both flavours; no I/O here."""

    def __init__(
        self,
        database_url: str | None = None,
        redis_url: str | None = None,
        encryption_key: str | None = None,
        *,
        settings: Settings | None = None,
        allow_ephemeral_key: bool | None = None,
        clock: Callable[[], datetime] | None = None,
        providers: Mapping[str, ProviderConfig] | None = None,
        credential_apps: Mapping[str, CredentialApp] | None = None,
        on_event: Callable[[ConnectionEvent], None] | None = None,
        refresh_timeout: float | None = None,
        retry_policy: RetryPolicy | None = None,
        local_cache: bool | None = None,
        audit_caller: str | None = None,
    ) -> None:
        if settings is None:
            # The seed's `OAuthTokenCache()`: the environment, read once, through Settings.
            settings = Settings.load(
                database_url=database_url,
                redis_url=redis_url,
                oauth_encryption_key=encryption_key,
                allow_ephemeral_key=allow_ephemeral_key,
                local_cache=local_cache,
            )
        elif local_cache is not None:
            settings = settings.model_copy(update={"local_cache": local_cache})
        self._settings = settings
        self._providers: dict[str, ProviderConfig] | None = (
            None if providers is None else dict(providers)
        )
        self._credential_apps: dict[str, CredentialApp] | None = (
            None if credential_apps is None else dict(credential_apps)
        )
        self._declared: dict[str, tuple[ConnectionParam, ...]] = {}
        self._api_targets: BoundedMemo[ApiTarget] = BoundedMemo(4096)
        self._events = EventSink(on_event)
        self._refresh_timeout = (
            settings.refresh_timeout if refresh_timeout is None else refresh_timeout
        )
        self._retry_policy = retry_policy or RetryPolicy()
        self._refresh_timing = RefreshTiming(
            grant_timeout=self._refresh_timeout,
            save_window=settings.refresh_save_window,
            answer_window=settings.refresh_answer_window,
        )
        self._client_refusals = ClientRefusals(settings.client_rejected_backoff)
        self._location: DatabaseLocation = settings.database_location
        keyring: KeyRing = resolve_keyring(settings, self._location)
        self._redis_url = settings.redis_url_value
        self._local: LocalCache | None = None
        self._memory = VersionMemory()  # replaced on open()
        self._reads = ReadCounters()
        self._core = VaultCore(
            keyring=keyring,
            clock=clock or _utc_now,
            has_cache=self._redis_url is not None,
            default_cache_ttl=settings.default_cache_ttl,
            declared_params=self._declared_params,
        )
        # Started when the vault opens; counts every seal's key, written in batches.
        self._key_usage = KeyUsageRecorder(
            self._location, keyring.usage, connect_timeout=settings.db_connect_timeout
        )
        self._audit: AuditTrail | None = None
        self._audit_caller = audit_caller
        if audit_caller is not None:
            if not isinstance(audit_caller, str) or not 0 < len(audit_caller) <= 100:
                raise InvalidInput("audit_caller", "must be a name of 1 to 100 characters")
            self._audit = AuditTrail(
                self._location,
                retention_days=settings.audit_retention_days,
                connect_timeout=settings.db_connect_timeout,
            )
        self._connect()
        if self._audit is not None:
            self._audit.start()

    @property
    def audit_trail(self) -> AuditTrail | None:
        """The audit trail of this vault's token reads (``audit_caller=`` given), else
        ``None``; ``audit_trail.read(workspace_id, ...)`` reads it back."""
        return self._audit

    def _audited(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        outcome: Outcome,
        caller: str | None = None,
        source: str | None = None,
    ) -> None:
        if self._audit is not None:
            name = caller or self._audit_caller or "library"
            self._audit.record(name, provider, workspace_id, actor_id, outcome, source)

    def _audit_failure(
        self,
        error: VaultError,
        ids: tuple[str, str, str],
        caller: str | None,
        source: str | None,
    ) -> None:
        """Record a read that failed, unless its ids were invalid (nothing to name)."""
        outcome = outcome_of(error)
        if outcome is not None:
            self._audited(*ids, outcome, caller, source)

    def _connect(self) -> None:
        """Build the store and the cache (each flavour its own I/O classes)."""
        raise NotImplementedError

    def _new_breaker(self) -> CircuitBreaker:
        # The vault's clock drives the breaker too, so tests move time instead of sleeping.
        clock = self._core.clock
        return CircuitBreaker(clock=lambda: clock().timestamp())

    @property
    def backend_mode(self) -> BackendMode:
        """``"db+cache"`` when a Redis URL is configured (even while Redis is down), else
        ``"db-only"``."""
        return "db+cache" if self._core.has_cache else "db-only"

    @property
    def keyring(self) -> KeyRing:
        return self._core.keyring

    @property
    def key_usage(self) -> KeyUsageRecorder:
        """Encryptions by key id (all instances', from the database, plus this one's not
        written yet): ``totals()`` (no I/O), ``read()``, ``flush()``; see
        :mod:`oauthvault.crypto.usage` for the limit."""
        return self._key_usage

    def key_encryptions(self) -> dict[str, int]:
        """Encryptions by the id of each key in the ring, newest first (no I/O: the
        database's totals as last read or written, plus this process's not written yet)."""
        totals = self._key_usage.totals()
        return {key_id: totals.get(key_id, 0) for key_id in self._core.keyring.key_ids}

    @property
    def database(self) -> str:
        """Where the tokens live, without any password."""
        return self._location.description

    @property
    def providers(self) -> Mapping[str, ProviderConfig]:
        """The provider apps this vault refreshes and revokes with (read-only): those
        given as ``providers=``, else the ones of the settings' ``OAUTHVAULT_CONFIG`` file,
        read on first use (storage-only users need no provider configuration)."""
        return MappingProxyType(self._provider_configs())

    def now(self) -> datetime:
        """The vault's time (its injected ``clock``), timezone-aware."""
        return self._core.clock()

    def _provider_configs(self) -> dict[str, ProviderConfig]:
        if self._providers is None:
            self._providers = dict(self._settings.provider_configs())
        return self._providers

    def _configured_provider(self, name: str) -> ProviderConfig:
        config = self._provider_configs().get(name)
        if config is None:
            raise UnknownProvider(name)
        return config

    def _remember_provider(self, config: ProviderConfig) -> ProviderConfig:
        """Keep a provider resolved by discovery, so it is discovered once."""
        self._provider_configs()[config.name] = config
        self._declared.pop(config.name, None)
        return config

    def _declared_params(self, provider: str) -> tuple[ConnectionParam, ...]:
        """The connection parameters ``provider`` declares: its configured table's (a
        catalog entry it names included), else the catalog entry of that name; none for
        others. Kept per provider: every read checks stored values against them.

        Raises:
            ConfigError: the configuration file (read on first use) is wrong.
        """
        declared = self._declared.get(provider)
        if declared is None:
            config = self._provider_configs().get(provider)
            spec = None if config is None else config.spec
            if spec is None:
                name = provider if config is None else config.catalog_provider or provider
                spec = load_catalog().get(name)
            if spec is not None:
                declared = spec.connection_params
            else:
                declared = _credential_params(credential_entry(provider))
            self._declared[provider] = declared
        return declared

    def _credential_spec(self, provider: str) -> CredentialSpec:
        """The credential catalog's entry for ``provider``.

        Raises:
            UnknownProvider: no such entry.
        """
        spec = credential_entry(provider)
        if spec is None:
            raise UnknownProvider(provider)
        app = self._credential_app(provider)
        return spec if app is None else app.applied_to(spec)

    def _credential_app(self, provider: str) -> CredentialApp | None:
        """The app's ``[credentials.<provider>]`` settings (read on first use), if any.

        Raises:
            ConfigError: the configuration file is wrong.
        """
        if self._credential_apps is None:
            self._credential_apps = dict(self._settings.credential_apps())
        return self._credential_apps.get(provider)

    def _checked_credentials(
        self,
        spec: CredentialSpec,
        credentials: Mapping[str, str],
        params: Mapping[str, str] | None,
    ) -> tuple[Credentials, Mapping[str, str]]:
        """A new credential's fields and connection parameters, checked; the parameters
        taken from a field added.

        Raises:
            InvalidInput: naming the field or parameter.
        """
        fields = spec.check(credentials)
        given_all = dict(params or {})
        # A value the connect flow takes from a callback (a GitHub installation id) may be
        # given too, by a caller that captured it itself: checked by its pattern.
        captured: dict[str, str] = {}
        for param in spec.connection_params:
            if param.source == "callback" and param.name in given_all:
                value = given_all.pop(param.name)
                if not isinstance(value, str) or not param.accepts(value):
                    raise InvalidInput(f"params.{param.name}", f"must be a valid {param.label}")
                captured[param.name] = value
        given = check_given_params(spec.connection_params, given_all, fixed={})
        given.update(captured)
        for param in spec.connection_params:
            if param.source == "callback" and param.required and param.name not in given:
                raise InvalidInput(f"params.{param.name}", "is required")
        given.update(spec.derive_params(fields))
        return fields, MappingProxyType(given) if given else NO_PARAMS

    def _static_tokens(self, fields: Credentials, params: Mapping[str, str]) -> TokenSet:
        """The row of an API key, password or other fields: no token, no expiry."""
        return TokenSet(
            "", None, None, None, params, issued_at=self._core.clock(), credentials=fields
        )

    def _minting_tokens(self, fields: Credentials, params: Mapping[str, str]) -> TokenSet:
        """The row of an ``app`` or ``two_step`` credential before its first token: an
        expired placeholder, for the mint that follows to replace."""
        expired = self._core.clock() - timedelta(seconds=1)
        return TokenSet("-", None, expired, None, params, credentials=fields)

    @staticmethod
    def _public_fields(spec: CredentialSpec, fields: Credentials) -> tuple[tuple[str, str], ...]:
        """A credential's non-secret fields (they may shape its API URL), never a secret."""
        secret = spec.secret_fields
        return tuple(sorted((k, v) for k, v in fields.items() if k not in secret))

    @staticmethod
    def _listed(rows: list[StoredConnection]) -> list[StoredConnection]:
        """Rows as listed: a static credential (its fields sealed where a refresh token
        would be) renews nothing, so it has no refresh token to show."""
        listed = []
        for row in rows:
            spec = credential_entry(row.provider) if row.has_refresh_token else None
            static = spec is not None and not spec.minted
            listed.append(dataclasses.replace(row, has_refresh_token=False) if static else row)
        return listed

    def _placement(self, provider: str, tokens: TokenSet) -> Placement:
        """Where this connection's credential goes on a request (pure)."""
        fields = tokens.credentials
        if fields is None:
            bearer = {"Authorization": f"Bearer {tokens.access_token}"}
            return Placement(MappingProxyType(bearer), NO_PARAMS, renewable=True)
        spec = self._credential_spec(provider)
        minted = None if fields.static else tokens.access_token
        return spec.placement(fields, tokens.params, minted)

    @staticmethod
    def _accept_verdict(spec: CredentialSpec, verdict: Verdict) -> None:
        """Go on after a verification that did not refuse the credential.

        Raises:
            InvalidCredentials: the provider refused it.
            ProviderError: the provider could not say (no answer, a 5xx or 429).
        """
        if verdict.outcome == "refused":
            raise InvalidCredentials(
                "invalid_credentials",
                f"{spec.display_name} refused the credential ({verdict.detail})",
            )
        if verdict.outcome == "unavailable":
            raise ProviderError(
                "temporarily_unavailable",
                f"{spec.display_name} could not verify the credential: {verdict.detail}",
            )

    @staticmethod
    def _status_for(verdict: Verdict) -> tuple[ConnectionStatus, str | None] | None:
        """The status a stored credential takes after a verification (``None``: keep)."""
        if verdict.outcome == "refused":
            return (
                ConnectionStatus.NEEDS_REAUTH,
                f"the provider refused the credential ({verdict.detail})",
            )
        if verdict.outcome == "valid":
            return ConnectionStatus.ACTIVE, None
        return None

    def check_tokens(
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
    ) -> None:
        """Check a :meth:`store_tokens` call without making it (no I/O): what would be
        refused is refused here, so that many connections can be checked before any is
        written (``oauthvault import``).

        Raises:
            InvalidInput: an id, token or parameter breaks a rule (naming it).
        """
        self._checked_tokens(
            provider, workspace_id, actor_id, access_token, refresh_token, expires_in, scope, params
        )

    def check_credentials(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        credentials: Mapping[str, str],
        *,
        params: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Check a :meth:`store_credentials` call without making it (no I/O, nothing
        sent): the ids, the provider's credential catalog entry, the fields and the
        connection parameters. Returns the checked fields.

        Raises:
            InvalidInput: an id, a field or a parameter breaks a rule (naming it).
            UnknownProvider: ``provider`` is not in the credential catalog.
        """
        TokenKey(provider, workspace_id, actor_id)
        fields, _ = self._checked_credentials(self._credential_spec(provider), credentials, params)
        return fields

    def _checked_tokens(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        access_token: str,
        refresh_token: str | None,
        expires_in: int | None,
        scope: str | None,
        params: Mapping[str, str] | None,
    ) -> tuple[TokenKey, Mapping[str, str]]:
        key = TokenKey(provider, workspace_id, actor_id)
        validate_tokens(access_token, refresh_token, expires_in, scope)
        checked = validate_params(params)
        if checked:
            # Every read checks them again: a value stored here could never be read back.
            for param in self._declared_params(provider):
                value = checked.get(param.name)
                if value is not None and not param.accepts(value):
                    raise InvalidInput(f"params.{param.name}", f"must be a valid {param.label}")
        return key, checked

    def _sealed_for_store(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        access_token: str,
        refresh_token: str | None,
        expires_in: int | None,
        scope: str | None,
        params: Mapping[str, str] | None,
        token_response: Mapping[str, Any] | None,
    ) -> tuple[TokenKey, TokenSet, SealedRow]:
        """A ``store_tokens`` call checked, and its row sealed: the first half of
        :meth:`VaultCore.store <oauthvault.vault.flows.VaultCore.store>`, which each
        vault's ``store_tokens`` performs inline (no I/O here).

        Raises:
            InvalidInput: an argument breaks a rule.
        """
        key, checked = self._checked_tokens(
            provider, workspace_id, actor_id, access_token, refresh_token, expires_in, scope, params
        )
        response = validate_response(token_response)
        core = self._core
        tokens = core.tokens_for_store(access_token, refresh_token, expires_in, scope, checked)
        return key, tokens, seal_row(core.keyring, key, tokens, response)

    def _client_credentials_row(
        self,
        config: ProviderConfig,
        key: TokenKey,
        client_id: str | None,
        client_secret: str | None,
        scope: str | None,
        params: Mapping[str, object] | None = None,
    ) -> Flow:
        """Check a new client-credentials connection and store it with an expired
        placeholder token, for the forced refresh that follows to replace."""
        spec = config.spec
        in_catalog = (config.catalog_provider or key.provider) in load_catalog()
        if in_catalog and spec is not None and not spec.client_credentials:
            raise InvalidInput("provider", "does not document the client_credentials grant")
        if (client_id is None) != (client_secret is None):
            raise InvalidInput("client_secret", "goes with client_id (or neither: the app's)")
        if client_id is not None:
            validate_client_credentials(client_id, client_secret)
        validate_scope(scope)
        credentials = ClientCredentials(client_id, client_secret)
        given = (
            check_given_params(spec.connection_params, params or {}, fixed=config.placeholders)
            if spec is not None
            else validate_params(params)
        )
        placeholder = TokenSet(
            "-", None, self._core.clock() - timedelta(seconds=1), scope, given, credentials
        )
        return self._core.store(key, placeholder)

    def _readiness(self, revision: str | None, reachable: bool, cache_up: bool) -> Readiness:
        """The readiness report from what the flavour found (no I/O here)."""
        database: Literal["up", "down", "old_schema"] = "up"
        if not reachable:
            database = "down"
        elif revision != HEAD_REVISION:
            database = "old_schema"
        cache: Literal["up", "down", "off"] = "off"
        if self._core.has_cache:
            cache = "up" if cache_up else "down"
        local: Literal["live", "suspended", "unsupported", "off"] = "off"
        info = self.cache_info()
        if info.local_enabled:
            local = "live" if info.local_live else "suspended"
            if info.feed_unsupported:
                local = "unsupported"
        pending = tuple(
            sorted(
                name
                for name, config in (self._providers or {}).items()
                if config.spec is None and config.issuer is not None
            )
        )
        return Readiness(database == "up", database, cache, local, pending)

    def _fresh_enough(self, key: TokenKey, tokens: TokenSet | None, min_ttl: float) -> bool:
        """Whether ``tokens`` (just read) can be handed out as they are.

        Raises:
            TokenNotFound: nothing is stored for ``key``.
        """
        if tokens is None:
            raise TokenNotFound(
                f"no tokens stored for {key.provider}/{key.workspace_id}/{key.actor_id}"
            )
        return tokens.lasts(min_ttl, self._core.clock())

    def _refresh_flow(
        self, key: TokenKey, *, min_ttl: float, force: bool, seen: TokenSet | None
    ) -> RefreshFlow:
        return refresh_flow(
            self._core,
            key,
            min_ttl=min_ttl,
            force=force,
            seen=seen,
            policy=self._retry_policy,
            timing=self._refresh_timing,
            owner=_lease_owner(),
        )

    def _idle_cutoffs(self) -> list[tuple[str, datetime]]:
        """Per provider with an idle policy: refresh tokens unused since then are kept alive
        (once half the provider's idle window has passed)."""
        now = self._core.clock()
        cutoffs = []
        for name, config in self._provider_configs().items():
            days = config.spec.refresh_token_idle_expiry_days if config.spec else None
            if days:
                cutoffs.append((name, now - timedelta(days=days / 2)))
        return cutoffs

    def refresh_outcomes(self) -> dict[tuple[str, str], int]:
        """Refresh outcomes since the vault was made, by (provider, outcome): ``ok``,
        ``transient`` (the connection became degraded), ``needs_reauth``, ``lost`` (new
        tokens not saved), ``abandoned`` (a lease taken over)."""
        return self._events.outcomes()

    def _emit(self, event: ConnectionEvent) -> None:
        self._events.emit(event)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(database={self.database!r}, "
            f"backend_mode={self.backend_mode!r}, key_ids={self.keyring.key_ids!r})"
        )
