# WARNING: generated from vault/credentials_async.py by scripts/async_to_sync.py: do not edit.
# Edit vault/credentials_async.py, then run scripts/async_to_sync.py (scripts/test checks it).
"""The non-OAuth half of the vault's public face: storing, reading, verifying and placing
credentials (API keys, passwords, named fields; app and two-step tokens minted from them).

:class:`AsyncCredentialVault` (this module) is the hand-written source; ``CredentialVault``
(:mod:`oauthvault.vault.credentials`) is generated from it by ``scripts/async_to_sync.py``.
Each vault flavour inherits its twin: the methods here use the flavour's own reads, flows and
refreshes, declared below as what a vault provides. The checks and the pure decisions live
in :class:`~oauthvault.vault.base.VaultBase` and :mod:`oauthvault.vault.credential_flows`;
the requests to providers are the sans-I/O exchanges of :mod:`oauthvault.oauth.verification`
and :mod:`oauthvault.oauth.mint`, driven here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx

from oauthvault.errors import (
    ConfigError,
    InvalidCredentials,
    ProviderError,
    ReauthorizationRequired,
    TokenNotFound,
    VaultError,
)
from oauthvault.models import Credentials, TokenKey, TokenSet
from oauthvault.oauth.mint import mint_token
from oauthvault.oauth.token_request import GrantResult, run_sync
from oauthvault.oauth.verification import Verdict, revoke_credential, verify_credential
from oauthvault.providers.api_targets import ApiTarget, credential_target, provider_target
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.credentials import CredentialSpec, Placement
from oauthvault.storage.base import TokenStore
from oauthvault.vault.api_client import ApiAuth, ApiClient
from oauthvault.vault.base import VaultBase
from oauthvault.vault.credential_flows import credentials_of, mark_status
from oauthvault.vault.results import ApiAccess
from oauthvault.vault.steps import Flow

__all__ = ["CredentialVault"]


class CredentialVault(VaultBase):
    """Credential methods of :class:`~oauthvault.OAuthTokenCache` (see the module
    docstring)."""

    _store: TokenStore
    _opened: bool

    # --- what a vault provides (the flavour's own, overriding these) ----------------------

    def open(self) -> None:
        raise NotImplementedError

    def _run(self, flow: Flow) -> Any:
        raise NotImplementedError

    def _get(self, key: TokenKey) -> TokenSet | None:
        raise NotImplementedError

    def _delete(self, key: TokenKey) -> bool:
        raise NotImplementedError

    def _fresh(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        min_ttl: float,
        any_kind: bool = False,
    ) -> tuple[TokenSet, bool]:
        raise NotImplementedError

    def _provider(self, name: str) -> ProviderConfig:
        raise NotImplementedError

    def refresh_tokens(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        *,
        caller: str | None = None,
        source: str | None = None,
    ) -> TokenSet:
        raise NotImplementedError

    # --- credentials ----------------------------------------------------------------------

    def _mint(self, provider: str, fields: Credentials, params: Mapping[str, str]) -> GrantResult:
        """Mint a token for an ``app`` or ``two_step`` connection."""
        spec = self._credential_spec(provider)
        app = self._credential_app(provider)
        flow = mint_token(spec, app, fields, params, self._core.clock)
        with httpx.Client(timeout=self._refresh_timeout) as http:
            result: GrantResult = run_sync(flow, http)
        return result

    def _revoke_credential(self, key: TokenKey, tokens: TokenSet) -> bool | None:
        spec = self._credential_spec(key.provider)
        fields = credentials_of(key, tokens)
        minted = None if fields.static else tokens.access_token
        if spec.revocation is None or (minted is not None and not tokens.has_left(1, self.now())):
            return None
        flow = revoke_credential(spec, fields, tokens.params, minted)
        with httpx.Client(timeout=self._refresh_timeout) as http:
            revoked: bool | None = run_sync(flow, http)
        return revoked

    def store_credentials(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        credentials: Mapping[str, str],
        *,
        params: Mapping[str, str] | None = None,
        verify: bool = True,
        caller: str | None = None,
        source: str | None = None,
    ) -> Credentials:
        """Store (or replace) a non-OAuth connection: an API key, a username and password,
        several named fields, or what an ``app`` or ``two_step`` token is minted from, as
        the credential catalog describes ``provider``. Sealed like tokens, listed, read
        (:meth:`get_credentials`) and deleted like any connection.

        With ``verify`` (the default) the catalog's verification request is sent first
        (for ``app`` and ``two_step`` kinds, the first token is minted and then verified):
        a credential the provider refuses is not kept. Without it the credential is
        stored as given (an import), and a minted kind mints on first use. ``params``
        are connection parameters (a Zendesk subdomain, a GitHub installation id); those
        the catalog takes from a field (Mailchimp's data centre) are added. Returns the
        stored fields.

        Raises:
            InvalidInput: an id, a field or a parameter breaks a rule; nothing is written.
            UnknownProvider: ``provider`` is not in the credential catalog.
            InvalidCredentials: the provider refused the credential; nothing is kept (a
                connection stored before under these ids is put back).
            ProviderError: the provider could not be asked; likewise.
            StorageUnavailable: the database write failed.
        """
        key = TokenKey(provider, workspace_id, actor_id)
        spec = self._credential_spec(provider)
        fields, given = self._checked_credentials(spec, credentials, params)
        if not self._opened:
            self.open()
        if spec.minted and not verify:  # imported as is: the first use mints
            self._heard(key, self._run(self._core.store(key, self._minting_tokens(fields, given))))
            return fields
        if spec.minted:
            self._store_minted(key, spec, fields, given, caller, source)
            return fields
        if verify:
            self._accept_verdict(spec, self._verify(spec, fields, given))
        tokens = self._static_tokens(fields, given)
        self._heard(key, self._run(self._core.store(key, tokens)))
        return fields

    def _store_minted(
        self,
        key: TokenKey,
        spec: CredentialSpec,
        fields: Credentials,
        given: Mapping[str, str],
        caller: str | None,
        source: str | None,
    ) -> None:
        """Store an ``app`` or ``two_step`` credential and mint its first token; on any
        failure the connection stored before (or none) is put back."""
        previous = self._store.get(key)
        self._heard(key, self._run(self._core.store(key, self._minting_tokens(fields, given))))
        ids = (key.provider, key.workspace_id, key.actor_id)
        try:
            try:
                minted = self.refresh_tokens(*ids, caller=caller, source=source)
            except ReauthorizationRequired as refused:
                raise InvalidCredentials(refused.error, refused.error_description) from None
            verdict = self._verify(spec, fields, minted.params, minted.access_token)
            self._accept_verdict(spec, verdict)
        except ProviderError:
            if previous is None:
                self._delete(key)
            else:
                self._heard(key, self._run(self._core.restore(key, previous)))
            raise

    def _verify(
        self,
        spec: CredentialSpec,
        fields: Mapping[str, str],
        params: Mapping[str, str],
        access_token: str | None = None,
    ) -> Verdict:
        """Send ``spec``'s verification request with the credential."""
        flow = verify_credential(spec, fields, params, access_token)
        with httpx.Client(timeout=self._refresh_timeout) as http:
            verdict: Verdict = run_sync(flow, http)
        return verdict

    def get_credentials(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        *,
        caller: str | None = None,
        source: str | None = None,
    ) -> Credentials:
        """A non-OAuth connection's fields: a read-only mapping whose ``repr`` shows no
        value. Audited like a token read (as by ``caller`` from ``source``).

        Raises:
            TokenNotFound: nothing is stored for the connection.
            WrongCredentialKind: the connection holds OAuth tokens.
            DecryptionError, StorageUnavailable: as :meth:`get_tokens`.
        """
        ids = (provider, workspace_id, actor_id)
        try:
            key = TokenKey(provider, workspace_id, actor_id)
            tokens = self._get(key)
            if tokens is None:
                raise TokenNotFound(f"nothing is stored for {provider}/{workspace_id}/{actor_id}")
            fields = credentials_of(key, tokens)
        except VaultError as error:
            self._audit_failure(error, ids, caller, source)
            raise
        self._audited(provider, workspace_id, actor_id, "served", caller, source)
        return fields

    def verify_credentials(
        self, provider: str, workspace_id: str, actor_id: str
    ) -> Literal["valid", "refused", "unavailable", "skipped"]:
        """Ask the provider again whether a stored credential works (after a 401 from its
        API, say): ``refused`` (401/403) marks the connection ``needs_reauth``, ``valid``
        marks it ``active`` again, each with a ``status_changed`` event when that is news;
        ``unavailable`` (no answer) and ``skipped`` (the catalog documents no
        verification) change nothing.

        Raises:
            TokenNotFound: nothing is stored.
            WrongCredentialKind: the connection holds OAuth tokens.
            UnknownProvider: ``provider`` is not in the credential catalog.
            ReauthorizationRequired: a minted kind whose token can no longer be minted.
        """
        key = TokenKey(provider, workspace_id, actor_id)
        spec = self._credential_spec(provider)
        tokens = self._get(key)
        if tokens is None:
            raise TokenNotFound(f"nothing is stored for {provider}/{workspace_id}/{actor_id}")
        fields = credentials_of(key, tokens)
        minted = None
        if not fields.static:
            minted = self._fresh(provider, workspace_id, actor_id, 60)[0].access_token
        verdict = self._verify(spec, fields, tokens.params, minted)
        change = self._status_for(verdict)
        if change is not None:
            self._run(mark_status(key, change[0], change[1], self.now()))
        return verdict.outcome

    def verify_new_credentials(
        self,
        provider: str,
        credentials: Mapping[str, str],
        *,
        params: Mapping[str, str] | None = None,
    ) -> Verdict:
        """Ask the provider whether a credential works before it is stored: the check and
        the request :meth:`store_credentials` makes with ``verify=True`` (for ``app`` and
        ``two_step`` kinds, a token is minted and used for it, then dropped), with nothing
        written. ``oauthvault import`` verifies every line so before it stores any.

        Returns the verdict: ``outcome`` is ``valid``, ``refused`` (401/403, or no token
        could be minted), ``unavailable`` (no answer, a 5xx or 429) or ``skipped`` (the
        catalog documents no verification request); ``detail`` says why, never a value.

        Raises:
            InvalidInput: a field or a parameter breaks a rule.
            UnknownProvider: ``provider`` is not in the credential catalog.
            ProviderError: a token could not be minted for a reason that is not the
                credential's (the app's configuration).
        """
        spec = self._credential_spec(provider)
        fields, given = self._checked_credentials(spec, credentials, params)
        if not spec.minted:
            return self._verify(spec, fields, given)
        minted = self._mint(provider, fields, given)
        if minted.outcome == "reauth":
            return Verdict("refused", minted.description or minted.error or "no token minted")
        if minted.outcome == "transient":
            return Verdict("unavailable", minted.description or minted.error or "no answer")
        if minted.outcome != "ok" or minted.token is None:
            raise ProviderError(minted.error or "server_error", minted.description)
        access_token = str(minted.token["access_token"])
        return self._verify(spec, fields, {**given, **minted.params}, access_token)

    def request_auth(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        min_ttl: float = 60,
        *,
        caller: str | None = None,
        source: str | None = None,
    ) -> Placement:
        """What a request to the provider's API carries for this connection, whatever
        its kind: ``Authorization: Bearer`` with an access token valid ``min_ttl`` seconds
        (OAuth, app-minted, two-step: refreshed or minted first when needed), or the
        credential placed as the catalog says (a header, HTTP Basic, query parameters).
        Audited like a token read.

        Raises: as :meth:`get_access_token`, but never ``WrongCredentialKind``.
        """
        ids = (provider, workspace_id, actor_id)
        try:
            tokens, refreshed = self._fresh(*ids, min_ttl, any_kind=True)
            placement = self._placement(provider, tokens)
        except VaultError as error:
            self._audit_failure(error, ids, caller, source)
            raise
        self._audited(*ids, "refreshed" if refreshed else "served", caller, source)
        return placement

    def api_access(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        min_ttl: float = 60,
        *,
        caller: str | None = None,
        source: str | None = None,
    ) -> ApiAccess:
        """Where a request to the provider's API for this connection may go (its API base
        URL, filled with the connection's parameters, and the hosts the provider owns) and
        what it carries (:meth:`request_auth`). Audited like a token read.

        Raises:
            UnknownProvider: the provider is neither configured nor a credential entry.
            ConfigError: the provider documents no API base URL (set ``api_base_url`` in its
                table), or a parameter it needs is missing.
            TargetRefused: the filled base URL cannot be a target.
            and as :meth:`request_auth`.
        """
        ids = (provider, workspace_id, actor_id)
        try:
            tokens, refreshed = self._fresh(*ids, min_ttl, any_kind=True)
            placement = self._placement(provider, tokens)
            target = self._api_target(provider, tokens)
        except VaultError as error:
            self._audit_failure(error, ids, caller, source)
            raise
        self._audited(*ids, "refreshed" if refreshed else "served", caller, source)
        return ApiAccess(target, placement, tokens)

    def api_access_renewed(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        refused: ApiAccess,
        *,
        caller: str | None = None,
        source: str | None = None,
    ) -> ApiAccess:
        """The access after the provider answered 401 to ``refused``: a new token, by one
        grant however many callers were refused with the same token at once (the refresh
        lease: a caller that finds the token already renewed takes it), or the same
        access for a static credential, which only its owner can replace.

        Raises: as :meth:`refresh_tokens`.
        """
        if not refused.placement.renewable:
            return refused
        ids = (provider, workspace_id, actor_id)
        key = TokenKey(*ids)
        try:
            flow = self._refresh_flow(key, min_ttl=0, force=True, seen=refused.tokens)
            tokens: TokenSet = self._run(flow)
            self._heard(key, tokens.version)
            access = ApiAccess(
                self._api_target(provider, tokens),
                self._placement(provider, tokens),
                tokens,
            )
        except VaultError as error:
            self._audit_failure(error, ids, caller, source)
            raise
        self._audited(*ids, "refreshed", caller, source)
        return access

    def http_client(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        *,
        retry_after_cap: float | None = None,
        retries: int | None = None,
        timeout: httpx.Timeout | None = None,
        caller: str | None = None,
        source: str | None = None,
    ) -> httpx.Client:
        """An httpx client bound to this connection's provider API, with the API proxy's
        rules and no extra hop: ``base_url`` is the connection's API base URL, the
        credential is placed on every request (renewed once after a 401 for a renewable
        kind), every URL is checked before it is sent (below the base URL, by the proxy's
        path rules), only public addresses are reached, redirects are followed only to the
        provider's hosts, and a 429 or 503 with a ``Retry-After`` of at most
        ``retry_after_cap`` seconds (default ``OAUTHVAULT_PROXY_RETRY_AFTER_CAP``) is waited
        out ``retries`` times at most (default ``OAUTHVAULT_PROXY_RETRIES``) for idempotent
        methods. ``timeout`` defaults to ``OAUTHVAULT_PROXY_CONNECT_TIMEOUT`` and
        ``OAUTHVAULT_PROXY_READ_TIMEOUT``. Close it when done (it is a context manager). See
        :mod:`oauthvault.vault.api_client_async`.

        Raises:
            as :meth:`api_access` (now, for the base URL, and from each request); each
            request also raises ``TargetRefused`` for a URL or a redirect it may not follow.
        """
        ids = (provider, workspace_id, actor_id)
        access = self.api_access(*ids, caller=caller, source=source)
        settings = self._settings
        auth = ApiAuth(
            self,
            ids,
            access,
            retry_after_cap=(
                settings.proxy_retry_after_cap if retry_after_cap is None else retry_after_cap
            ),
            retries=settings.proxy_retries if retries is None else retries,
            caller=caller,
            source=source,
        )
        if timeout is None:
            timeout = httpx.Timeout(
                settings.proxy_read_timeout,
                connect=settings.proxy_connect_timeout,
                pool=settings.proxy_connect_timeout,
            )
        return ApiClient(auth, timeout=timeout)

    def _api_target(self, provider: str, tokens: TokenSet) -> ApiTarget:
        """The connection's API target, kept per (provider, parameters, non-secret fields):
        a proxied call reads it each time, and it changes only with those."""
        fields = tokens.credentials
        spec = self._credential_spec(provider) if fields is not None else None
        public = () if spec is None or fields is None else self._public_fields(spec, fields)
        cache_key = (provider, tuple(sorted(tokens.params.items())), public)
        target = self._api_targets.get(cache_key)
        if target is not None:
            return target
        if spec is not None and fields is not None:
            target = credential_target(spec, tokens.params, fields)
        else:
            oauth_spec = self._provider(provider).spec
            target = None if oauth_spec is None else provider_target(oauth_spec, tokens.params)
        if target is None:
            raise ConfigError(
                f"providers.{provider}.api_base_url", "is required to send requests to its API"
            )
        self._api_targets.keep(cache_key, target)
        return target
