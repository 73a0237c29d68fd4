"""The server-to-server API: connect links, tokens, connections. Bearer API keys.

The routes only translate: bodies are the models of :mod:`oauthvault.service.schemas`,
the work is the vault's, the connector's and the links'.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import Histogram
from starlette.responses import Response

from oauthvault.audit import AuditEntry
from oauthvault.connect.flow import AsyncConnector
from oauthvault.errors import (
    ClientRejected,
    InvalidCredentials,
    InvalidInput,
    ProviderError,
    ReauthorizationRequired,
    TokenNotFound,
)
from oauthvault.failures import classify
from oauthvault.models import TokenKey, validate_filter
from oauthvault.providers import load_catalog
from oauthvault.providers.credentials import load_credential_catalog
from oauthvault.providers.describe import summary
from oauthvault.providers.params import check_given_params
from oauthvault.service.apikeys import ApiKey, ApiKeyRing
from oauthvault.service.credential_form import FORM_KINDS
from oauthvault.service.links import ConnectLink, ConnectLinks
from oauthvault.service.openapi import ACTOR_RULES, PROVIDER_RULES, WORKSPACE_RULES
from oauthvault.service.problems import Problem, provider_answer
from oauthvault.service.returns import ReturnUrlPolicy
from oauthvault.service.schemas import (
    AccessTokenResponse,
    AuditPage,
    AuditRecord,
    AuditSince,
    ClientCredentialsRequest,
    ClientCredentialsResponse,
    ConnectionRef,
    ConnectionResponse,
    ConnectLinkRequest,
    ConnectLinkResponse,
    CredentialsRequest,
    CredentialsResponse,
    CredentialsStored,
    DeleteResponse,
    ProviderResponse,
    StoreTokensRequest,
    VerifyResponse,
)
from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["create_api_router", "require_api_key"]


async def require_api_key(request: Request) -> ApiKey:
    """The API key of ``Authorization: Bearer …``, checked against ``app.state.api_keys``."""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Problem(401, "unauthorized", "send an API key as Authorization: Bearer …")
    keys: ApiKeyRing = request.app.state.api_keys
    found = keys.authenticate(presented.strip())
    if found is None:
        raise Problem(401, "unauthorized", "unknown API key")
    return found


# Module level, so that FastAPI can resolve the annotation of each route's parameter.
Key = Annotated[ApiKey, Depends(require_api_key)]


_TOKEN_QUERY_PARAMETERS = [
    {"name": name, "in": "query", "required": True, "schema": {"type": "string", **rules}}
    for name, rules in (
        ("provider", PROVIDER_RULES),
        ("workspace_id", WORKSPACE_RULES),
        ("actor_id", ACTOR_RULES),
    )
] + [
    {
        "name": "min_ttl",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": 3600, "default": 60},
    }
]


def _token_query(request: Request) -> tuple[str, str, str, int]:
    """provider, workspace_id, actor_id and min_ttl from the query string.

    Raises:
        RequestValidationError: answered as 422 ``invalid_request``, like other endpoints.
    """
    query = request.query_params
    errors = [
        {"loc": ("query", name), "msg": "Field required", "type": "missing"}
        for name in ("provider", "workspace_id", "actor_id")
        if name not in query
    ]
    min_ttl = 60
    if "min_ttl" in query:
        raw = query["min_ttl"]
        if raw.isascii() and raw.isdigit() and int(raw) <= 3600:  # not "²" (isdigit)
            min_ttl = int(raw)
        else:
            errors.append(
                {"loc": ("query", "min_ttl"), "msg": "must be an integer 0-3600", "type": "value"}
            )
    if errors:
        raise RequestValidationError(errors)
    return query["provider"], query["workspace_id"], query["actor_id"], min_ttl


def create_api_router(
    vault: AsyncOAuthTokenCache,
    links: ConnectLinks,
    return_urls: ReturnUrlPolicy,
    public_url: str,
    provider_names: list[str],
    connector: AsyncConnector | None = None,
    token_latency: Histogram | None = None,
    installable: frozenset[str] = frozenset(),
) -> APIRouter:
    """The ``/v1`` routes; ``installable`` names the GitHub Apps this deployment configures
    (their connect links install the app)."""
    router = APIRouter(prefix="/v1", tags=["server-to-server API"])
    base = public_url.rstrip("/")
    credential_catalog = load_credential_catalog()
    credential_names = frozenset(credential_catalog)
    credential_kinds = {name: spec.auth for name, spec in credential_catalog.items()}

    def check_workspace(key: ApiKey, workspace_id: str) -> None:
        if not key.allows(workspace_id):
            raise Problem(403, "forbidden", "this API key may not use that workspace")

    def check_reader(key: ApiKey, request: Request, ids: tuple[str, str, str]) -> None:
        """check_workspace for a token read: a refusal is audited too."""
        if not key.allows(ids[1]):
            trail = vault.audit_trail
            if trail is not None:
                client = request.client.host if request.client is not None else None
                trail.record(key.name, *ids, "refused", client)
            check_workspace(key, ids[1])

    def check_provider(provider: str) -> None:
        if provider not in provider_names:
            raise Problem(404, "unknown_provider", f"provider {provider!r} is not configured")

    async def check_app_client(key: ApiKey, provider: str, scope: str | None) -> None:
        """The app's own client is the app's, not a workspace's: only a key for all
        workspaces (or one configured with ``app_client_credentials``) may use it, and only
        for the app's scopes (as a connect link)."""
        if not key.may_use_app_client:
            raise Problem(
                403, "forbidden", "this API key may not use the app's own client; send client_id"
            )
        if scope is not None and connector is not None:
            spec = (await connector.provider(provider)).spec
            parts = scope.split(spec.scope_separator if spec is not None else " ")
            await connector.check_scopes(provider, [part for part in parts if part] or [scope])

    @router.post("/connect-links", response_model=ConnectLinkResponse, status_code=201)
    async def create_connect_link(body: ConnectLinkRequest, key: Key) -> ConnectLinkResponse:
        """A one-time URL (10 minutes) that connects ``actor_id`` of ``workspace_id``: to
        an OAuth provider, or (for a credential catalog entry taking an API key, a username
        and password or named fields) a form where the end user types the credential."""
        TokenKey(body.provider, body.workspace_id, body.actor_id)
        check_workspace(key, body.workspace_id)
        form = body.provider not in provider_names and body.provider in credential_names
        if not form:
            check_provider(body.provider)
        if body.return_url is not None and not return_urls.allows(body.return_url):
            raise Problem(400, "invalid_return_url", "return_url is not in the allow-list")
        params = body.params or {}
        scopes = tuple(body.scopes) if body.scopes is not None else None
        if form:
            spec = credential_catalog[body.provider]
            if spec.auth not in FORM_KINDS and body.provider not in installable:
                raise InvalidInput(
                    "provider", f"a {spec.auth} credential is stored with PUT /v1/credentials"
                )
            if scopes is not None:
                raise InvalidInput("scopes", "a credential takes no scopes")
            # Like an OAuth link's: a required one left out is asked for on the form.
            check_given_params(spec.connection_params, params, fixed={}, partial=True)
        elif connector is not None:  # checked now, so a bad value fails here, not in a browser
            # The link keeps what was given; a required parameter left out is asked for by
            # the link's page (a Shopify shop the end user knows and the app does not).
            await connector.check_params(body.provider, params, partial=True)
            await connector.check_scopes(body.provider, scopes)
        link = ConnectLink(
            body.provider,
            body.workspace_id,
            body.actor_id,
            body.return_url,
            params,
            scopes,
            workspace_name=body.workspace_name,
        )
        secret = None
        if body.binding == "host_page":
            token, expires_at, secret = await links.create_bound(link)
        else:
            token, expires_at = await links.create(link)
        url = f"{base}/oauth/{body.provider}/authorize?link={token}"
        return ConnectLinkResponse(url=url, expires_at=expires_at, browser_secret=secret)

    @router.get(
        "/connections/token",
        response_model=AccessTokenResponse,
        openapi_extra={"parameters": _TOKEN_QUERY_PARAMETERS},
    )
    async def get_access_token(request: Request) -> Response:
        """An access token valid for at least ``min_ttl`` seconds, refreshed first if needed
        (``409 reauthorization_required`` when the user must connect again)."""
        # The hottest endpoint reads its query itself: FastAPI's per-parameter machinery
        # costs more than the Redis round trip behind it.
        key = await require_api_key(request)
        provider, workspace_id, actor_id, min_ttl = _token_query(request)
        TokenKey(provider, workspace_id, actor_id)  # valid ids first: they are audited
        check_reader(key, request, (provider, workspace_id, actor_id))
        started, outcome = time.perf_counter(), "error"
        client = request.client.host if request.client is not None else None
        try:
            tokens = await vault.get_fresh_tokens(
                provider, workspace_id, actor_id, min_ttl, caller=key.name, source=client
            )
            outcome = "served"
        except TokenNotFound:
            outcome = "not_found"
            raise Problem(404, "not_found", "no such connection") from None
        except ProviderError as error:
            if isinstance(error, ReauthorizationRequired):
                outcome = "needs_reauth"
                raise
            if isinstance(error, ClientRejected):
                raise
            detail = "the token has expired and the provider failed to renew it"
            raise Problem(503, "refresh_failed", detail, **_answer(error)) from None
        finally:
            if token_latency is not None:
                token_latency.labels(outcome).observe(time.perf_counter() - started)
        # The hot endpoint: serialized directly (``response_model`` documents it), skipping
        # FastAPI's second validation pass of the returned model.
        body = {
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_at": None if tokens.expires_at is None else tokens.expires_at.isoformat(),
            "scope": tokens.scope,
            "params": dict(tokens.params),
        }
        return Response(json.dumps(body), media_type="application/json")

    @router.post("/connections/refresh", response_model=AccessTokenResponse)
    async def refresh_connection(
        body: ConnectionRef, key: Key, request: Request
    ) -> AccessTokenResponse:
        """Refresh now, whatever the token's age (unless another caller refreshed it since
        it was read): for a token known to be revoked or changed at the provider.
        ``GET /v1/connections/token`` refreshes by itself when needed."""
        TokenKey(body.provider, body.workspace_id, body.actor_id)
        check_reader(key, request, (body.provider, body.workspace_id, body.actor_id))
        try:
            tokens = await vault.refresh_tokens(
                body.provider,
                body.workspace_id,
                body.actor_id,
                caller=key.name,
                source=request.client.host if request.client is not None else None,
            )
        except TokenNotFound:
            raise Problem(404, "not_found", "no such connection") from None
        except ProviderError as error:
            if isinstance(error, (ReauthorizationRequired, ClientRejected)):
                raise
            detail = "the provider failed to renew the token"
            raise Problem(503, "refresh_failed", detail, **_answer(error)) from None
        return AccessTokenResponse(
            access_token=tokens.access_token,
            expires_at=tokens.expires_at,
            scope=tokens.scope,
            params=dict(tokens.params),
        )

    @router.put("/connections", status_code=204)
    async def store_tokens(body: StoreTokensRequest, key: Key) -> None:
        """Store tokens obtained elsewhere (replaces the connection's tokens)."""
        TokenKey(body.provider, body.workspace_id, body.actor_id)
        check_workspace(key, body.workspace_id)
        check_provider(body.provider)  # an unconfigured one would be a new metrics label
        await vault.store_tokens(
            body.provider,
            body.workspace_id,
            body.actor_id,
            body.access_token,
            body.refresh_token,
            body.expires_in,
            body.scope,
        )

    def check_credential_provider(provider: str) -> None:
        if provider not in credential_names:
            raise Problem(404, "unknown_provider", f"{provider!r} is not in the credential catalog")

    @router.put("/credentials", response_model=CredentialsStored, status_code=201)
    async def store_credentials(
        body: CredentialsRequest, key: Key, request: Request
    ) -> CredentialsStored:
        """Store (or replace) a non-OAuth credential: an API key, a username and password,
        named fields, or what an app or two-step token is minted from. Verified first by
        default: a refused one is answered ``400 invalid_credentials`` and not stored."""
        TokenKey(body.provider, body.workspace_id, body.actor_id)
        check_workspace(key, body.workspace_id)
        check_credential_provider(body.provider)
        try:
            fields = await vault.store_credentials(
                body.provider,
                body.workspace_id,
                body.actor_id,
                body.credentials,
                params=body.params,
                verify=body.verify,
                caller=key.name,
                source=request.client.host if request.client is not None else None,
            )
        except ProviderError as error:
            if isinstance(error, (InvalidCredentials, ClientRejected)):
                raise
            detail = "the provider could not be asked whether the credential works"
            raise Problem(503, "verification_failed", detail, **_answer(error)) from None
        params = await _params_of(body.provider, body.workspace_id, body.actor_id)
        return CredentialsStored(
            provider=body.provider,
            workspace_id=body.workspace_id,
            actor_id=body.actor_id,
            kind=fields.kind,
            fields=sorted(fields),
            params=params,
        )

    async def _params_of(provider: str, workspace_id: str, actor_id: str) -> dict[str, str]:
        """A stored connection's parameters (not secret), from its listing."""
        listed = await vault.list_connections(
            provider=provider, workspace_id=workspace_id, actor_id=actor_id, limit=1
        )
        return dict(listed[0].params) if listed else {}

    @router.get("/credentials", response_model=CredentialsResponse)
    async def get_credentials(
        request: Request,
        key: Key,
        provider: Annotated[str, Query(json_schema_extra=PROVIDER_RULES)],
        workspace_id: Annotated[str, Query(json_schema_extra=WORKSPACE_RULES)],
        actor_id: Annotated[str, Query(json_schema_extra=ACTOR_RULES)],
    ) -> CredentialsResponse:
        """A non-OAuth connection's fields (secrets included), audited like a token read.
        ``409 wrong_credential_kind`` for an OAuth connection."""
        TokenKey(provider, workspace_id, actor_id)
        check_reader(key, request, (provider, workspace_id, actor_id))
        try:
            fields = await vault.get_credentials(
                provider,
                workspace_id,
                actor_id,
                caller=key.name,
                source=request.client.host if request.client is not None else None,
            )
        except TokenNotFound:
            raise Problem(404, "not_found", "no such connection") from None
        return CredentialsResponse(
            provider=provider,
            workspace_id=workspace_id,
            actor_id=actor_id,
            kind=fields.kind,
            credentials=dict(fields),
            params=await _params_of(provider, workspace_id, actor_id),
        )

    @router.post("/credentials/verify", response_model=VerifyResponse)
    async def verify_credentials(body: ConnectionRef, key: Key) -> VerifyResponse:
        """Ask the provider again whether a stored credential works (after a 401 from its
        API): ``refused`` marks the connection ``needs_reauth``, ``valid`` ``active``."""
        TokenKey(body.provider, body.workspace_id, body.actor_id)
        check_workspace(key, body.workspace_id)
        check_credential_provider(body.provider)
        try:
            outcome = await vault.verify_credentials(
                body.provider, body.workspace_id, body.actor_id
            )
        except TokenNotFound:
            raise Problem(404, "not_found", "no such connection") from None
        return VerifyResponse(outcome=outcome)

    @router.post("/client-credentials", response_model=ClientCredentialsResponse, status_code=201)
    async def store_client_credentials(
        body: ClientCredentialsRequest, key: Key, request: Request
    ) -> ClientCredentialsResponse:
        """Create a client-credentials connection (machine to machine) and fetch its first
        token; read it like any other with ``GET /v1/connections/token``."""
        TokenKey(body.provider, body.workspace_id, body.actor_id)
        check_workspace(key, body.workspace_id)
        check_provider(body.provider)
        if body.client_id is None and body.client_secret is None:
            await check_app_client(key, body.provider, body.scope)
        try:
            tokens = await vault.store_client_credentials(
                body.provider,
                body.workspace_id,
                body.actor_id,
                client_id=body.client_id,
                client_secret=body.client_secret,
                scope=body.scope,
                params=body.params,
                caller=key.name,
                source=request.client.host if request.client is not None else None,
            )
        except ReauthorizationRequired:
            raise Problem(
                400, "invalid_client_credentials", "the provider refused these credentials"
            ) from None
        except ProviderError:
            raise Problem(
                503, "provider_unavailable", "the provider could not be reached"
            ) from None
        return ClientCredentialsResponse(expires_at=tokens.expires_at, scope=tokens.scope)

    @router.delete("/connections", response_model=DeleteResponse)
    async def delete_connection(
        key: Key,
        provider: Annotated[str, Query(json_schema_extra=PROVIDER_RULES)],
        workspace_id: Annotated[str, Query(json_schema_extra=WORKSPACE_RULES)],
        actor_id: Annotated[str, Query(json_schema_extra=ACTOR_RULES)],
        revoke: bool = False,
    ) -> DeleteResponse:
        """Delete a connection; with ``revoke=true`` ask the provider to revoke it first."""
        TokenKey(provider, workspace_id, actor_id)
        check_workspace(key, workspace_id)
        if not revoke:
            deleted = await vault.delete_tokens(provider, workspace_id, actor_id)
            return DeleteResponse(deleted=deleted, revoked=None)
        outcome = await vault.delete_tokens(provider, workspace_id, actor_id, revoke=True)
        return DeleteResponse(deleted=outcome.deleted, revoked=outcome.revoked)

    @router.get("/providers", response_model=list[ProviderResponse])
    async def list_providers(key: Key) -> list[ProviderResponse]:
        """The provider catalog, and which providers this deployment has apps for (named
        only: no client ids or secrets)."""
        apps = connector.catalog_apps() if connector is not None else {}
        return [
            ProviderResponse(**summary(spec), configured=name in apps, apps=apps.get(name, []))
            for name, spec in sorted(load_catalog().items())
        ]

    @router.get("/audit", response_model=AuditPage)
    async def read_audit(
        key: Key,
        request: Request,
        workspace_id: Annotated[str, Query(json_schema_extra=WORKSPACE_RULES)],
        provider: Annotated[str | None, Query(json_schema_extra=PROVIDER_RULES)] = None,
        actor_id: Annotated[str | None, Query(json_schema_extra=ACTOR_RULES)] = None,
        since: Annotated[
            AuditSince | None, Query(description="Only entries at or after this time.")
        ] = None,
        after: Annotated[int, Query(ge=0, description="The `next_after` of the page before.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        """Who was handed which connection's token, when, and with what outcome, and the
        calls through ``/v1/proxy`` (outcome ``proxied``, details in ``call``; never the
        query); oldest first, one page at a time; never a token. Only the API key's
        workspaces."""
        validate_filter(provider, workspace_id, actor_id)
        check_workspace(key, workspace_id)
        trail = vault.audit_trail
        if trail is None:
            raise Problem(404, "not_found", "auditing is off (OAUTHVAULT_AUDIT=false)")
        names = request.app.state.api_keys.names
        entries = await asyncio.to_thread(
            trail.read,
            workspace_id,
            provider=provider,
            actor_id=actor_id,
            since=since,
            after=after,
            limit=limit,
        )
        return AuditPage(
            entries=[
                AuditRecord(**shown_to(key, entry, names))  # type: ignore[arg-type]
                for entry in entries
            ],
            next_after=entries[-1].id if len(entries) == limit else None,
        )

    @router.get("/connections", response_model=list[ConnectionResponse])
    async def list_connections(
        key: Key,
        workspace_id: Annotated[str, Query(json_schema_extra=WORKSPACE_RULES)],
        provider: Annotated[str | None, Query(json_schema_extra=PROVIDER_RULES)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[ConnectionResponse]:
        """A workspace's connections, with status and scopes, never tokens."""
        check_workspace(key, workspace_id)
        rows = await vault.list_connections(provider, workspace_id, limit)
        return [
            ConnectionResponse(
                provider=row.provider,
                workspace_id=row.workspace_id,
                actor_id=row.actor_id,
                status=row.status,
                expires_at=row.expires_at,
                scope=row.scope,
                has_refresh_token=row.has_refresh_token,
                updated_at=row.updated_at,
                last_refreshed_at=row.last_refreshed_at,
                last_error=row.last_error,
                params=dict(row.params),
                auth=credential_kinds.get(row.provider, "oauth2"),
            )
            for row in rows
        ]

    return router


#: What a workspace key's audit read shows for the name of a key that is not a workspace
#: key's own: another tenant's key names are not its business.
ANOTHER_KEY = "another key"


def shown_to(key: ApiKey, entry: AuditEntry, key_names: frozenset[str]) -> dict[str, object]:
    """An audit entry as ``key`` may read it: a key limited to workspaces sees its own name
    and the service's own callers (``service``, ``admin console``), and ``another key`` for
    any other configured key's name (pure)."""
    shown = entry.as_dict()
    if key.workspaces is not None and entry.caller != key.name and entry.caller in key_names:
        shown["caller"] = ANOTHER_KEY
    return shown


def _answer(error: ProviderError) -> dict[str, str]:
    """The provider's ``error`` and ``error_description`` for a problem body."""
    return provider_answer(classify(error))
