"""The bodies the server-to-server API takes and answers (pydantic models).

The rules the vault checks are stated in the schema too (the vault still checks them,
naming the argument): a request the OpenAPI document allows is never refused for its shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field

from oauthvault.service.openapi import (
    ACTOR_RULES,
    EXPIRES_IN_RULES,
    PROVIDER_RULES,
    SCOPE_RULES,
    TOKEN_RULES,
    WORKSPACE_RULES,
    param_rules,
)

__all__ = [
    "AccessTokenResponse",
    "ActorId",
    "AuditPage",
    "AuditRecord",
    "AuditSince",
    "ClientCredentialsRequest",
    "ClientCredentialsResponse",
    "ConnectLinkRequest",
    "ConnectLinkResponse",
    "ConnectionRef",
    "ConnectionResponse",
    "CredentialsRequest",
    "CredentialsResponse",
    "CredentialsStored",
    "DeleteResponse",
    "JsonInteger",
    "Params",
    "ProviderId",
    "ProviderParam",
    "ProviderResponse",
    "ProxiedCallRecord",
    "StoreTokensRequest",
    "VerifyResponse",
    "WorkspaceId",
]

ProviderId = Annotated[str, Field(json_schema_extra=PROVIDER_RULES)]
WorkspaceId = Annotated[str, Field(json_schema_extra=WORKSPACE_RULES)]
ActorId = Annotated[str, Field(json_schema_extra=ACTOR_RULES)]


def _json_integer(value: object) -> object:
    # A JSON integer (1616 or 1616.0), never true/false or a string of digits.
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


def _in_utc(value: datetime) -> datetime:
    # 0001-01-01T01:00:53+04:05 is a valid time that has no UTC (it is before year 1).
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range in UTC") from None


AuditSince = Annotated[AwareDatetime, AfterValidator(_in_utc)]
JsonInteger = Annotated[int, BeforeValidator(_json_integer)]
Params = Annotated[dict[str, str] | None, Field(json_schema_extra=param_rules())]


class ConnectLinkRequest(BaseModel):
    provider: ProviderId
    workspace_id: WorkspaceId
    actor_id: ActorId
    return_url: str | None = Field(
        default=None,
        description="Where the browser goes afterwards (must match the allow-list); "
        "without it the flow ends on oauthvault's own result page.",
    )
    params: Params = Field(
        default=None,
        description="The connection parameters the provider needs up front (a Shopify "
        "`shop`, a Zendesk `subdomain`, a Salesforce `hostname`): see the provider catalog.",
    )
    scopes: list[str] | None = Field(
        default=None,
        description="Narrow the app's scopes for this connection (a subset of them).",
    )
    workspace_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The workspace's name as its people know it, shown on the link's "
        "confirmation page.",
    )
    binding: Literal["none", "host_page"] = Field(
        default="none",
        description="`host_page`: the link works only when the host app's own page (on an "
        "origin of the return-URL allow-list) POSTs it with the `browser_secret` answered; "
        "opening the URL alone does nothing.",
    )


class ConnectLinkResponse(BaseModel):
    url: str
    expires_at: datetime
    browser_secret: str | None = Field(
        default=None,
        description="With `binding = host_page` only: POST it as `browser_secret` to `url` "
        "from the host app's page. Shown once; the vault keeps only its hash.",
    )


class AccessTokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the token type, not a token
    expires_at: datetime | None
    scope: str | None
    params: dict[str, str] = Field(
        default_factory=dict, description="The connection's parameters (not secret)."
    )


class ConnectionRef(BaseModel):
    provider: ProviderId
    workspace_id: WorkspaceId
    actor_id: ActorId


class StoreTokensRequest(BaseModel):
    provider: ProviderId
    workspace_id: WorkspaceId
    actor_id: ActorId
    access_token: str = Field(repr=False, json_schema_extra=TOKEN_RULES)
    refresh_token: str | None = Field(default=None, repr=False, json_schema_extra=TOKEN_RULES)
    expires_in: JsonInteger | None = Field(default=None, json_schema_extra=EXPIRES_IN_RULES)
    scope: str | None = Field(default=None, json_schema_extra=SCOPE_RULES)


class ClientCredentialsRequest(BaseModel):
    provider: ProviderId
    workspace_id: WorkspaceId
    actor_id: ActorId
    client_id: str | None = Field(
        default=None,
        description="A customer's own client id (omit both to use the app's).",
        json_schema_extra=TOKEN_RULES,
    )
    client_secret: str | None = Field(default=None, repr=False, json_schema_extra=TOKEN_RULES)
    scope: str | None = Field(default=None, json_schema_extra=SCOPE_RULES)
    params: Params = Field(
        default=None, description="Connection parameters, as for a connect link."
    )


class CredentialsRequest(BaseModel):
    provider: ProviderId
    workspace_id: WorkspaceId
    actor_id: ActorId
    credentials: dict[str, str] = Field(
        repr=False,
        max_length=16,
        description="The credential's fields by name, as the provider's catalog entry lists "
        "them (`api_key`; `username` and `password`; ...).",
    )
    params: Params = Field(
        default=None, description="Connection parameters (a Zendesk `subdomain`)."
    )
    verify: bool = Field(
        default=True,
        description="Send the catalog's verification request first; a refused credential "
        "is answered `400 invalid_credentials` and nothing is stored.",
    )


class CredentialsStored(BaseModel):
    provider: str
    workspace_id: str
    actor_id: str
    kind: str = Field(description="api_key, basic, fields, app or two_step.")
    fields: list[str] = Field(description="The names of the stored fields (never a value).")
    params: dict[str, str] = Field(default_factory=dict)


class CredentialsResponse(BaseModel):
    provider: str
    workspace_id: str
    actor_id: str
    kind: str
    credentials: dict[str, str] = Field(repr=False)
    params: dict[str, str] = Field(default_factory=dict)


class VerifyResponse(BaseModel):
    outcome: Literal["valid", "refused", "unavailable", "skipped"] = Field(
        description="`refused` marks the connection needs_reauth; `valid` active."
    )


class ClientCredentialsResponse(BaseModel):
    expires_at: datetime | None
    scope: str | None


class ConnectionResponse(BaseModel):
    provider: str
    workspace_id: str
    actor_id: str
    status: str
    expires_at: datetime | None
    scope: str | None
    has_refresh_token: bool
    updated_at: datetime
    last_refreshed_at: datetime | None
    last_error: str | None
    params: dict[str, str] = Field(default_factory=dict)
    auth: str = Field(
        default="oauth2",
        description="oauth2, or the credential kind: api_key, basic, fields, app, two_step.",
    )


class ProviderParam(BaseModel):
    name: str
    label: str
    source: str
    required: bool


class ProviderResponse(BaseModel):
    name: str
    display_name: str
    auth_style: str
    refreshes: bool
    revokes: bool
    connection_params: list[ProviderParam]
    docs_url: str | None
    configured: bool = Field(description="Whether this deployment has an app for it.")
    apps: list[str] = Field(
        default_factory=list, description="The configured app (integration) names using it."
    )


class DeleteResponse(BaseModel):
    deleted: bool
    revoked: bool | None = Field(
        description="true: the provider confirmed; false: it refused or failed; "
        "null: not asked, or the provider has no revocation endpoint"
    )


class ProxiedCallRecord(BaseModel):
    """One call through ``/v1/proxy``: never the query string, a header or a body."""

    method: str
    host: str | None = Field(
        description="The provider API's host; null when the vault refused before knowing it."
    )
    path: str = Field(
        description="The provider URL's path (the caller's path when the vault refused "
        "before building the URL), never the query."
    )
    status: int = Field(description="The HTTP status the caller got.")
    error: str | None = Field(
        description="The vault's problem code when the vault refused (`Oauthvault-Error`); "
        "null when the provider answered."
    )
    duration_ms: int = Field(description="From the request to the answer's last byte.")
    response_bytes: int = Field(description="The answer's body, as streamed to the caller.")
    request_bytes: int = Field(description="The request's body, as sent.")


class AuditRecord(BaseModel):
    id: int
    at: datetime
    caller: str = Field(description="The API key's name (or a library caller's).")
    provider: str
    workspace_id: str
    actor_id: str
    outcome: Literal["served", "refreshed", "not_found", "refused", "failed", "proxied"] = Field(
        description="`proxied`: a call through `/v1/proxy` (see `call`); the others are "
        "token reads."
    )
    source: str | None = Field(description="The client's address, when known.")
    call: ProxiedCallRecord | None = Field(
        default=None, description="The proxied call, for outcome `proxied`; else null."
    )


class AuditPage(BaseModel):
    entries: list[AuditRecord]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )
