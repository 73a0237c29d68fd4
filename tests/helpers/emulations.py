"""What each catalog provider does, as data for :mod:`tests.helpers.provider_emulator`.

The catalog (``src/oauthvault/providers/providers.toml``) already says how a provider
wants to be *asked*: endpoints, client authentication, body format, PKCE, scopes, extra
parameters, refresh-token rotation, the revocation request. The emulator reads all of that
from the catalog at runtime and checks every request against it. What the catalog cannot
say is how a provider *answers*; that is what this module holds, one :class:`Emulation` per
provider, taken from the provider's documentation (the entry's ``docs_url``):

- the shape of the code-exchange and refresh answers (``code_answer`` / ``refresh_answer``,
  templates: a string ``"$name"`` is replaced by the emulator's value of that name and a key
  whose value is ``None`` after substitution is left out, so ``"$refresh_token"`` vanishes
  when no refresh token is issued);
- values handed back on the callback (QuickBooks ``realmId``) and by the identity endpoint
  (Atlassian sites, Xero tenants, HubSpot account details);
- the documented dead-grant answer (``dead_grant``) and revocation answer;
- what a test gives up front (``link_params``) and the connection parameters the service
  must end up with (``expected_params``).

Template values: ``access_token``, ``refresh_token``, ``expires_in`` (int), ``scope`` (the
scope string as requested), ``scope_list`` (the scopes as a JSON list), ``issued_at``
(epoch milliseconds as a string, Salesforce style), and ``secondary_access_token``,
``secondary_refresh_token``, ``secondary_expires_in`` of the second grant an answer may
carry (``secondary_grant``: Slack's installing user next to the bot).

A provider whose catalog entry has an ``issuer`` adds an RS256 ``id_token`` to the
code-exchange answer when ``openid`` was asked for (the emulator makes ``iss``, ``sub``,
``aud``, ``iat``, ``exp`` and ``nonce``); ``id_token_claims`` is a template of the claims the
provider's documentation adds, filled from ``subject`` (the emulated account),
``client_id``, ``auth_time``, ``at_hash``, and ``email``, ``email_verified`` (only with the
``email`` scope) and ``name`` (only with ``profile``). A claim it sets replaces the
emulator's (Salesforce's ``sub`` is the identity URL).

Access tokens of the emulator live ``expires_in`` seconds, 1800 by default (shorter than
many providers' real lifetimes: Slack 12 h, Discord 7 days); the suite refreshes with
``POST /v1/connections/refresh``. Providers whose tokens never expire (GitHub OAuth Apps)
or live 60 days (LinkedIn) keep their documented lifetime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["DEFAULT_DEAD_GRANT", "EMULATIONS", "STANDARD_ANSWER", "Emulation"]

#: RFC 6749 §5.1: the answer most providers give to both grants.
STANDARD_ANSWER: Mapping[str, Any] = MappingProxyType(
    {
        "access_token": "$access_token",
        "token_type": "Bearer",
        "expires_in": "$expires_in",
        "refresh_token": "$refresh_token",
        "scope": "$scope",
    }
)
#: RFC 6749 §5.2: a refresh token that is revoked, expired or unknown.
DEFAULT_DEAD_GRANT: tuple[int, Mapping[str, Any]] = (
    400,
    MappingProxyType(
        {"error": "invalid_grant", "error_description": "the refresh token is not valid"}
    ),
)


def _frozen(values: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class Emulation:
    """How one provider answers (see the module docstring for the template language).

    ``about``: what is special, in a sentence or two.
    ``link_params``: connection parameters the test gives when it creates the connect link.
    ``callback_params``: extra query parameters of the redirect back to the app.
    ``code_answer`` / ``refresh_answer``: answer templates of the two grants
    (``refresh_answer=None``: same as ``code_answer``).
    ``expires_in``: lifetime of the emulated access tokens (``None``: they never expire and
    the answer carries no ``expires_in``).
    ``lifetime_param``: a token-request parameter that sets the lifetime (Zendesk).
    ``echoes_static_refresh_token``: a refresh answer of a ``static`` provider repeats the
    refresh token (HubSpot); otherwise it carries none.
    ``identity``: the JSON answer of the entry's ``identity_endpoint``.
    ``redeem_at``: URL placeholder values (as they appear in the emulator's paths) that the
    code must be redeemed at, and its grant then refreshed and revoked at: the data centre
    the callback names (Zoho's ``accounts-server``); a request elsewhere is refused.
    ``expected_params``: connection parameters the service must report after connect.
    ``dead_grant``: HTTP status and body of a refresh after the grant died.
    ``revocation_answer``: HTTP status and JSON body (``None``: empty) of a revocation.
    ``form_answer_without_accept_json``: answers the token request form-encoded unless the
    client sends ``Accept: application/json`` (GitHub).
    ``token_prefix``: how the provider's access tokens look (cosmetic).
    ``secondary_grant``: the code exchange also issues a second, separately refreshable
    grant, which answers as this variant does (Slack: the installing user's token under
    ``authed_user`` next to the bot token).
    ``variants``: named alternatives (field overrides), chosen through the emulator's
    control endpoint before a connect flow (Slack's user-token-only install).
    ``id_token_claims``: the id_token claims besides the standard ones (template; see the
    module docstring); only used for a provider with an ``issuer``.
    """

    about: str
    link_params: Mapping[str, str] = field(default_factory=_frozen)
    callback_params: Mapping[str, str] = field(default_factory=_frozen)
    code_answer: Mapping[str, Any] = field(default_factory=lambda: STANDARD_ANSWER)
    refresh_answer: Mapping[str, Any] | None = None
    expires_in: int | None = 1800
    lifetime_param: str | None = None
    echoes_static_refresh_token: bool = False
    identity: Any = None
    redeem_at: Mapping[str, str] = field(default_factory=_frozen)
    expected_params: Mapping[str, str] = field(default_factory=_frozen)
    dead_grant: tuple[int, Mapping[str, Any]] = DEFAULT_DEAD_GRANT
    revocation_answer: tuple[int, Any] = (200, None)
    form_answer_without_accept_json: bool = False
    token_prefix: str = "at-"
    secondary_grant: str | None = None
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=_frozen)
    id_token_claims: Mapping[str, Any] = field(default_factory=_frozen)


# --- shared values -----------------------------------------------------------------------------

SLACK_TEAM = {"id": "T0ACME0001", "name": "Acme"}
NOTION_WORKSPACE_ID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
NOTION_BOT_ID = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
ATLASSIAN_CLOUD_ID = "11223344-a1b2-4c3d-8e9f-556677889900"
XERO_TENANT_ID = "45e4708e-d862-4111-ab3a-dd8cd03913e1"
TENANT_GUID = "9188040d-6c67-4c5b-b112-36a304b66dad"
CALENDLY_OWNER = "https://api.calendly.com/users/EBHAAFHDCAEQTSEZ"
CALENDLY_ORGANIZATION = "https://api.calendly.com/organizations/EBHAAFHDCAEQTSEZ"
SALESFORCE_INSTANCE = "https://acme.my.salesforce.com"
SALESFORCE_ID = "https://login.salesforce.com/id/00D5g000004ZbXyEAK/0055g00000AbCdEAAV"
DOCUSIGN_ACCOUNT_ID = "f0e1d2c3-b4a5-4968-8776-655443322110"
ATTIO_WORKSPACE_ID = "14beef7a-99f7-4534-a87e-70b564330a4c"
MYOB_BUSINESS_ID = "2f1ef9fc-2bd1-4c5e-9a3b-1c2d3e4f5a6b"
STRIPE_ACCOUNT = "acct_1032D82eZvKYlo2C"
ZOHO_EU_ACCOUNTS = "https://accounts.zoho.eu"
#: accounts-server values a callback might carry that are not Zoho's accounts hosts.
ZOHO_FOREIGN_ACCOUNTS_SERVERS = (
    "https://accounts.zoho.eu.evil.example",
    "https://evil.example",
    "https://accounts.zoho.eu@evil.example",
    "https://accounts.zoho.eu/x",
    "http://accounts.zoho.eu",
    "https://accounts.evil.example",
)

_SLACK_BOT_ANSWER = {
    "ok": True,
    "access_token": "$access_token",
    "token_type": "bot",
    "scope": "$scope",
    "bot_user_id": "U0BOT00001",
    "app_id": "A0APP00001",
    "team": SLACK_TEAM,
    "enterprise": None,
    "is_enterprise_install": False,
    "refresh_token": "$refresh_token",
    "expires_in": "$expires_in",
    "authed_user": {
        "id": "U0USER0001",
        "scope": "users:read",
        "access_token": "$secondary_access_token",
        "token_type": "user",
        "refresh_token": "$secondary_refresh_token",
        "expires_in": "$secondary_expires_in",
    },
}
_SLACK_USER_ONLY_ANSWER = {
    "ok": True,
    "app_id": "A0APP00001",
    "authed_user": {
        "id": "U0USER0001",
        "scope": "$scope",
        "access_token": "$access_token",
        "token_type": "user",
        "refresh_token": "$refresh_token",
        "expires_in": "$expires_in",
    },
    "team": SLACK_TEAM,
    "enterprise": None,
    "is_enterprise_install": False,
}


EMULATIONS: Mapping[str, Emulation] = MappingProxyType(
    {
        "google": Emulation(
            about="Refresh tokens only with access_type=offline; a refresh answer carries no "
            "refresh token (the first one stays valid); the id_token has azp, at_hash, and "
            "email/email_verified and name with those scopes.",
            token_prefix="ya29.",
            id_token_claims={
                "azp": "$client_id",
                "at_hash": "$at_hash",
                "email": "$email",
                "email_verified": "$email_verified",
                "name": "$name",
            },
        ),
        "microsoft": Emulation(
            about="Every refresh returns a new refresh token; ext_expires_in besides "
            "expires_in; no revocation endpoint.",
            code_answer={**STANDARD_ANSWER, "ext_expires_in": "$expires_in"},
            token_prefix="eyJ0eXAiOiJKV1Qi.",
        ),
        "microsoft-tenant": Emulation(
            about="As microsoft, with the tenant (GUID or verified domain) in every URL; the "
            "v2.0 id_token names the tenant (tid), the user's object id (oid) and ver 2.0.",
            link_params={"tenant": TENANT_GUID},
            code_answer={**STANDARD_ANSWER, "ext_expires_in": "$expires_in"},
            expected_params={"tenant": TENANT_GUID},
            id_token_claims={
                "ver": "2.0",
                "tid": TENANT_GUID,
                "oid": "00000000-0000-0000-66f3-3332eca7ea81",
                "nbf": "$auth_time",
                "preferred_username": "$email",
                "email": "$email",
                "name": "$name",
            },
        ),
        "apple": Emulation(
            about="The client secret is an ES256 JWT (iss team id, sub services id, aud "
            "https://appleid.apple.com, kid key id); the callback is a form POST "
            "(response_mode=form_post) that also carries the user's name the first time; a "
            "refresh answer has no refresh token. (No id_token is emulated: the catalog "
            "asks for no openid scope.)",
            code_answer={
                "access_token": "$access_token",
                "token_type": "Bearer",
                "expires_in": "$expires_in",
                "refresh_token": "$refresh_token",
            },
            token_prefix="a.",
        ),
        "github": Emulation(
            about="OAuth App tokens never expire and come without refresh token; the answer is "
            "form-encoded unless Accept: application/json is sent; revocation is DELETE "
            "/applications/{client_id}/grant with Basic auth, answered 204.",
            code_answer={
                "access_token": "$access_token",
                "token_type": "bearer",
                "scope": "$scope",
                "refresh_token": "$refresh_token",
                "expires_in": "$expires_in",
            },
            expires_in=None,
            dead_grant=(200, {"error": "bad_refresh_token", "error_description": "bad token"}),
            revocation_answer=(204, None),
            form_answer_without_accept_json=True,
            token_prefix="gho_",
        ),
        "gitlab": Emulation(
            about="A refresh invalidates the old access and refresh tokens; created_at in "
            "the answer; revocation answers 200 {}.",
            code_answer={**STANDARD_ANSWER, "created_at": 1_700_000_000},
            revocation_answer=(200, {}),
            token_prefix="glpat-",
            id_token_claims={
                "auth_time": "$auth_time",
                "email": "$email",
                "email_verified": "$email_verified",
            },
        ),
        "slack": Emulation(
            about="oauth.v2.access answers HTTP 200 with ok=true/false; the bot token is at the "
            "top level with team, bot_user_id and the installing user's own token (a second "
            "grant, refreshed on its own) under authed_user; with token rotation tokens expire "
            "and refresh tokens are single-use; auth.revoke takes the token as bearer and "
            "answers {ok, revoked}.",
            code_answer=_SLACK_BOT_ANSWER,
            refresh_answer={
                "ok": True,
                "access_token": "$access_token",
                "token_type": "bot",
                "scope": "$scope",
                "refresh_token": "$refresh_token",
                "expires_in": "$expires_in",
                "bot_user_id": "U0BOT00001",
                "app_id": "A0APP00001",
                "team": SLACK_TEAM,
                "enterprise": None,
                "is_enterprise_install": False,
            },
            expected_params={
                "team_id": "T0ACME0001",
                "bot_user_id": "U0BOT00001",
                "authed_user_id": "U0USER0001",
            },
            dead_grant=(200, {"ok": False, "error": "invalid_refresh_token"}),
            revocation_answer=(200, {"ok": True, "revoked": True}),
            token_prefix="xoxe.xoxb-1-",
            secondary_grant="user_only",
            variants={
                # Only user scopes requested (user_scope): no bot token, the user token is
                # nested under authed_user; its refresh answers carry it at the top level.
                "user_only": {
                    "code_answer": _SLACK_USER_ONLY_ANSWER,
                    "refresh_answer": {
                        "ok": True,
                        "access_token": "$access_token",
                        "token_type": "user",
                        "scope": "$scope",
                        "refresh_token": "$refresh_token",
                        "expires_in": "$expires_in",
                        "team": SLACK_TEAM,
                        "enterprise": None,
                    },
                    "expected_params": {"team_id": "T0ACME0001", "authed_user_id": "U0USER0001"},
                    "token_prefix": "xoxe.xoxp-1-",
                },
            },
        ),
        "atlassian": Emulation(
            about="Needs audience=api.atlassian.com; refresh tokens rotate; the sites of a "
            "grant come from GET /oauth/token/accessible-resources with the access token.",
            identity=[
                {
                    "id": ATLASSIAN_CLOUD_ID,
                    "url": "https://acme.atlassian.net",
                    "name": "acme",
                    "scopes": ["read:me"],
                    "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/a.png",
                }
            ],
            expected_params={
                "cloud_id": ATLASSIAN_CLOUD_ID,
                "site_url": "https://acme.atlassian.net",
            },
        ),
        "salesforce": Emulation(
            about="The answer has instance_url, id, signature and issued_at but no expires_in: "
            "the lifetime (the org's session timeout) is only known by introspection; the "
            "id_token's sub is the identity URL, with at_hash.",
            code_answer={
                "access_token": "$access_token",
                "refresh_token": "$refresh_token",
                "signature": "dGhpcyBpcyBhbiBlbXVsYXRlZCBzaWduYXR1cmU=",
                "scope": "$scope",
                "instance_url": SALESFORCE_INSTANCE,
                "id": SALESFORCE_ID,
                "token_type": "Bearer",
                "issued_at": "$issued_at",
            },
            expected_params={
                "hostname": "login.salesforce.com",
                "instance_url": SALESFORCE_INSTANCE,
                "identity_url": SALESFORCE_ID,
            },
            token_prefix="00D5g000004ZbXy!",
            id_token_claims={"sub": SALESFORCE_ID, "at_hash": "$at_hash"},
        ),
        "hubspot": Emulation(
            about="Static refresh token, repeated in every refresh answer; a dead refresh "
            "token is HTTP 400 with status BAD_REFRESH_TOKEN (no error field); the account "
            "(portal) id comes from GET /account-info/v3/details.",
            echoes_static_refresh_token=True,
            identity={
                "portalId": 12345678,
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18_000_000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            },
            expected_params={"portal_id": "12345678"},
            dead_grant=(
                400,
                {
                    "status": "BAD_REFRESH_TOKEN",
                    "message": "missing or unknown refresh token",
                    "correlationId": "3a8c1a6e-0000-4000-8000-000000000000",
                },
            ),
        ),
        "notion": Emulation(
            about="JSON token requests with Basic auth; the answer names the workspace, the "
            "bot and the owner; revocation is a JSON POST with a Notion-Version header. "
            "(expires_in is emulated so that refresh can be exercised.)",
            code_answer={
                "access_token": "$access_token",
                "token_type": "bearer",
                "refresh_token": "$refresh_token",
                "expires_in": "$expires_in",
                "bot_id": NOTION_BOT_ID,
                "workspace_name": "Acme",
                "workspace_icon": None,
                "workspace_id": NOTION_WORKSPACE_ID,
                "owner": {"type": "user", "user": {"object": "user", "id": NOTION_BOT_ID}},
                "duplicated_template_id": None,
            },
            expected_params={"workspace_id": NOTION_WORKSPACE_ID, "bot_id": NOTION_BOT_ID},
            revocation_answer=(200, {}),
            token_prefix="ntn_",
        ),
        "dropbox": Emulation(
            about="token_access_type=offline for a refresh token; the answer has account_id "
            "and uid; a refresh answer has no refresh token; revocation is a bodyless POST "
            "with the token as bearer, answered with JSON null.",
            code_answer={
                **STANDARD_ANSWER,
                "token_type": "bearer",
                "account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
                "uid": "12345",
            },
            refresh_answer={
                "access_token": "$access_token",
                "token_type": "bearer",
                "expires_in": "$expires_in",
            },
            expected_params={"account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"},
            token_prefix="sl.u.",
        ),
        "box": Emulation(
            about="Single-use refresh tokens; restricted_to in the answer.",
            code_answer={**STANDARD_ANSWER, "token_type": "bearer", "restricted_to": []},
        ),
        "zoom": Emulation(
            about="Basic auth; every refresh returns a new refresh token; api_url in the answer.",
            code_answer={
                **STANDARD_ANSWER,
                "token_type": "bearer",
                "api_url": "https://api.zoom.us",
            },
        ),
        "linkedin": Emulation(
            about="60-day access tokens and no refresh token for most apps; the id_token "
            "(OpenID Connect sign-in) has name, email and email_verified.",
            expires_in=5_184_000,
            id_token_claims={
                "name": "$name",
                "email": "$email",
                "email_verified": "$email_verified",
            },
        ),
        "discord": Emulation(
            about="Basic auth; refresh returns a new refresh token.",
        ),
        "xero": Emulation(
            about="30-minute access tokens, rotating refresh tokens; the organisations of a "
            "grant come from GET https://api.xero.com/connections; the id_token names "
            "xero_userid and global_session_id.",
            identity=[
                {
                    "id": "e1eede29-f875-4a5d-8470-17f6a29a88b1",
                    "authEventId": "d99ecdfe-391d-43d2-b834-17636ba90e8d",
                    "tenantId": XERO_TENANT_ID,
                    "tenantType": "ORGANISATION",
                    "tenantName": "Demo Company (Global)",
                    "createdDateUtc": "2026-01-01T00:00:00.0000000",
                    "updatedDateUtc": "2026-01-01T00:00:00.0000000",
                }
            ],
            expected_params={"tenant_id": XERO_TENANT_ID},
            id_token_claims={
                "auth_time": "$auth_time",
                "at_hash": "$at_hash",
                "xero_userid": "b0ff5f4e-4f0a-4c36-9fb8-1f7d2a0c5d11",
                "global_session_id": "8e4ad5b4c1f04e4ea4c3b1d0f2e9a7c6",
                "email": "$email",
                "preferred_username": "$email",
            },
        ),
        "quickbooks": Emulation(
            about="The company id arrives as realmId on the callback; the answer has "
            "x_refresh_token_expires_in; revocation is a JSON POST with Basic auth.",
            callback_params={"realmId": "9130347596453186"},
            code_answer={**STANDARD_ANSWER, "x_refresh_token_expires_in": 8_726_400},
            expected_params={"realm_id": "9130347596453186"},
        ),
        "spotify": Emulation(
            about="Basic auth; a refresh may return a new refresh token (it always does here).",
            token_prefix="BQ",
        ),
        "twitch": Emulation(
            about="scope comes back as a JSON list; errors are {status, message}; revocation "
            "is a form POST of client_id and token only; the id_token has azp.",
            id_token_claims={"azp": "$client_id"},
            code_answer={**STANDARD_ANSWER, "token_type": "bearer", "scope": "$scope_list"},
            dead_grant=(
                400,
                {"error": "Bad Request", "status": 400, "message": "Invalid refresh token"},
            ),
        ),
        "zendesk": Emulation(
            about="The subdomain is in every URL; expires_in and refresh_token_expires_in "
            "request parameters set the lifetimes; revocation is DELETE "
            "/api/v2/oauth/tokens/current.json with the token as bearer, answered 204.",
            link_params={"subdomain": "acme"},
            code_answer={
                **STANDARD_ANSWER,
                "token_type": "bearer",
                "refresh_token_expires_in": 2_592_000,
            },
            lifetime_param="expires_in",
            expected_params={"subdomain": "acme"},
            revocation_answer=(204, None),
        ),
        "shopify": Emulation(
            about="The shop's myshopify.com domain is in every URL; expiring=1 on the code "
            "exchange gives a 60-minute access token and a refresh token replaced on each use.",
            link_params={"shop": "acme.myshopify.com"},
            code_answer={
                "access_token": "$access_token",
                "scope": "$scope",
                "expires_in": "$expires_in",
                "refresh_token": "$refresh_token",
                "refresh_token_expires_in": 7_776_000,
            },
            expected_params={"shop": "acme.myshopify.com"},
            token_prefix="shpat_",
        ),
        "calendly": Emulation(
            about="The answer names the owner (user URI) and organization; refresh tokens "
            "are single-use.",
            code_answer={
                **STANDARD_ANSWER,
                "created_at": 1_700_000_000,
                "owner": CALENDLY_OWNER,
                "organization": CALENDLY_ORGANIZATION,
            },
            expected_params={"owner": CALENDLY_OWNER, "organization": CALENDLY_ORGANIZATION},
        ),
        "bitbucket": Emulation(
            about="Basic auth; the answer says scopes (plural) and state.",
            code_answer={
                "access_token": "$access_token",
                "scopes": "account",
                "token_type": "bearer",
                "expires_in": "$expires_in",
                "state": "authorization_code",
                "refresh_token": "$refresh_token",
            },
        ),
        "asana": Emulation(
            about="The answer describes the user under data; the refresh token is static and "
            "not repeated in refresh answers.",
            code_answer={
                **STANDARD_ANSWER,
                "token_type": "bearer",
                "data": {"gid": "1200000000000001", "name": "Ada", "email": "ada@example.com"},
            },
        ),
        "stripe-connect": Emulation(
            about="The answer names the connected account (stripe_user_id) and its publishable "
            "key; the refresh token stays and is repeated in refresh answers. (Stripe access "
            "tokens carry no expires_in; it is emulated so that refresh can be exercised.)",
            code_answer={
                **STANDARD_ANSWER,
                "token_type": "bearer",
                "livemode": False,
                "stripe_publishable_key": "pk_test_TYooMQauvdEDq54NiTphI7jx",
                "stripe_user_id": STRIPE_ACCOUNT,
            },
            echoes_static_refresh_token=True,
            expected_params={"stripe_user_id": STRIPE_ACCOUNT},
            token_prefix="sk_test_",
        ),
        "airtable": Emulation(
            about="PKCE and Basic auth; single-use refresh tokens; refresh_expires_in in the "
            "answer.",
            code_answer={**STANDARD_ANSWER, "refresh_expires_in": 5_184_000},
        ),
        "intercom": Emulation(
            about="Tokens never expire and come without refresh token; the answer repeats the "
            "access token as token; the region (US unless the link names EU or AU) picks the "
            "authorization and API hosts, and a code is redeemed only at its region's API host.",
            code_answer={
                "token_type": "Bearer",
                "token": "$access_token",
                "access_token": "$access_token",
            },
            expected_params={"region": "US"},
            expires_in=None,
        ),
        "pipedrive": Emulation(
            about="Basic auth; the answer names the company's api_domain; revocation is RFC "
            "7009 with Basic auth.",
            code_answer={**STANDARD_ANSWER, "api_domain": "https://acme.pipedrive.com"},
            expected_params={"api_domain": "https://acme.pipedrive.com"},
        ),
        "linear": Emulation(
            about="Comma-separated scopes; revocation is a bodyless POST with the access token "
            "as bearer.",
        ),
        "clickup": Emulation(
            about="Tokens never expire and come without refresh token.",
            code_answer={"access_token": "$access_token", "token_type": "Bearer"},
            expires_in=None,
        ),
        "monday": Emulation(
            about="OAuth 2.1: PKCE, expiring access tokens and a refresh token that is "
            "replaced on every refresh.",
        ),
        "docusign": Emulation(
            about="PKCE and Basic auth; the account id and API base URI come from GET "
            "/oauth/userinfo.",
            code_answer={
                "access_token": "$access_token",
                "token_type": "Bearer",
                "refresh_token": "$refresh_token",
                "expires_in": "$expires_in",
            },
            identity={
                "sub": "4799e5e9-1559-4915-9862-cf4713bbcacc",
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "accounts": [
                    {
                        "account_id": DOCUSIGN_ACCOUNT_ID,
                        "is_default": True,
                        "account_name": "Acme",
                        "base_uri": "https://na3.docusign.net",
                    }
                ],
            },
            expected_params={
                "account_id": DOCUSIGN_ACCOUNT_ID,
                "base_uri": "https://na3.docusign.net",
            },
            token_prefix="eyJ0eXAiOiJNVCIs.",
        ),
        "zoho": Emulation(
            about="Multi-DC: the authorization request goes to accounts.zoho.com (the link's "
            "domain, by default); an account of another data centre comes back with location "
            "and accounts-server on the callback, and its code is redeemed, its refresh token "
            "used and revoked only at that accounts server; the answer names the api_domain; "
            "refresh tokens stay and are not repeated; a bad refresh token is HTTP 200 with "
            "error invalid_code.",
            callback_params={"location": "eu", "accounts-server": ZOHO_EU_ACCOUNTS},
            redeem_at={"accounts_server": "accounts.zoho.eu"},
            code_answer={**STANDARD_ANSWER, "api_domain": "https://www.zohoapis.eu"},
            expected_params={
                "domain": "zoho.com",
                "accounts_server": ZOHO_EU_ACCOUNTS,
                "api_domain": "https://www.zohoapis.eu",
            },
            dead_grant=(200, {"error": "invalid_code"}),
            token_prefix="1000.",
            variants={
                f"foreign_accounts_server_{index}": {
                    "callback_params": {"location": "eu", "accounts-server": server}
                }
                for index, server in enumerate(ZOHO_FOREIGN_ACCOUNTS_SERVERS)
            },
        ),
        "okta": Emulation(
            about="The org domain is in every URL; Basic auth; PKCE; revocation is RFC 7009; "
            "the id_token has ver 1, auth_time, amr and the profile claims.",
            link_params={"domain": "acme.okta.com"},
            expected_params={"domain": "acme.okta.com"},
            id_token_claims={
                "ver": 1,
                "auth_time": "$auth_time",
                "amr": ["pwd"],
                "at_hash": "$at_hash",
                "email": "$email",
                "name": "$name",
                "preferred_username": "$email",
            },
        ),
        "auth0": Emulation(
            about="The tenant domain is in every URL; a dead refresh token is HTTP 403 "
            "invalid_grant.",
            link_params={"domain": "acme.us.auth0.com"},
            expected_params={"domain": "acme.us.auth0.com"},
            id_token_claims={
                "email": "$email",
                "email_verified": "$email_verified",
                "name": "$name",
            },
            dead_grant=(
                403,
                {
                    "error": "invalid_grant",
                    "error_description": "Unknown or invalid refresh token.",
                },
            ),
        ),
        "x": Emulation(
            about="PKCE and Basic auth; refresh tokens (offline.access) are replaced on every "
            "refresh; revocation is RFC 7009.",
        ),
        "facebook": Emulation(
            about="A 60-day user token without refresh token; revocation is DELETE "
            "/me/permissions with the token as access_token query parameter, answered "
            "{success: true}.",
            code_answer={
                "access_token": "$access_token",
                "token_type": "bearer",
                "expires_in": "$expires_in",
            },
            expires_in=5_183_944,
            revocation_answer=(200, {"success": True}),
            token_prefix="EAAB",
        ),
        "pinterest": Emulation(
            about="Basic auth; comma-separated scopes; refresh_token_expires_in in the answer.",
            code_answer={
                **STANDARD_ANSWER,
                "response_type": "authorization_code",
                "refresh_token_expires_in": 5_184_000,
            },
            token_prefix="pina_",
        ),
        "reddit": Emulation(
            about="Basic auth; duration=permanent for a refresh token; revocation is RFC 7009.",
            code_answer={**STANDARD_ANSWER, "token_type": "bearer"},
        ),
        "yahoo": Emulation(
            about="Basic auth; the answer names xoauth_yahoo_guid; the id_token has "
            "auth_time, amr and at_hash.",
            code_answer={**STANDARD_ANSWER, "xoauth_yahoo_guid": "JT4FACLQZI2OCE"},
            id_token_claims={"auth_time": "$auth_time", "amr": ["pwd"], "at_hash": "$at_hash"},
        ),
        "webex": Emulation(
            about="refresh_token_expires_in in the answer.",
            code_answer={**STANDARD_ANSWER, "refresh_token_expires_in": 7_776_000},
        ),
        "outreach": Emulation(
            about="created_at in the answer.",
            code_answer={**STANDARD_ANSWER, "created_at": 1_700_000_000},
        ),
        "gong": Emulation(
            about="Basic auth; the answer names the customer's API base URL.",
            code_answer={
                **STANDARD_ANSWER,
                "api_base_url_for_customer": "https://us-14321.api.gong.io",
            },
            expected_params={"api_base_url_for_customer": "https://us-14321.api.gong.io"},
        ),
        "servicenow": Emulation(
            about="The instance name is in every URL; a refresh answers only a new access "
            "token (the refresh token stays, for a fixed 100 days).",
            link_params={"subdomain": "acme"},
            expected_params={"subdomain": "acme"},
        ),
        "netsuite": Emulation(
            about="The account id is in every URL; PKCE (S256 only) and Basic auth.",
            link_params={"account_id": "1234567-sb1"},
            expected_params={"account_id": "1234567-sb1"},
        ),
        "sage": Emulation(
            about="filter=apiv3.1 on the authorization request; single-use refresh tokens; "
            "refresh_token_expires_in and requested_by_id in the answer.",
            code_answer={
                **STANDARD_ANSWER,
                "refresh_token_expires_in": 2_678_400,
                "requested_by_id": "d1c6a7c6-0000-4000-8000-000000000000",
            },
        ),
        "freshbooks": Emulation(
            about="JSON token requests; single-use refresh tokens; created_at in the answer.",
            code_answer={**STANDARD_ANSWER, "created_at": 1_700_000_000},
        ),
        "typeform": Emulation(
            about="The offline scope for a refresh token.",
        ),
        "gusto": Emulation(
            about="Single-use refresh tokens; created_at in the answer.",
            code_answer={**STANDARD_ANSWER, "created_at": 1_700_000_000},
        ),
        "miro": Emulation(
            about="Expiring tokens; the answer names user_id and team_id.",
            code_answer={
                **STANDARD_ANSWER,
                "user_id": "3074457350804038700",
                "team_id": "3074457350804038701",
            },
            expected_params={"team_id": "3074457350804038701"},
        ),
        "attio": Emulation(
            about="Tokens never expire and come without refresh token; the workspace comes "
            "from GET /v2/self.",
            code_answer={"access_token": "$access_token", "token_type": "Bearer"},
            expires_in=None,
            identity={
                "active": True,
                "scope": "record_permission:read",
                "token_type": "Bearer",
                "workspace_id": ATTIO_WORKSPACE_ID,
                "workspace_name": "Acme",
                "workspace_slug": "acme",
            },
            expected_params={"workspace_id": ATTIO_WORKSPACE_ID},
        ),
        "salesloft": Emulation(
            about="created_at in the answer; a new refresh token on every refresh.",
            code_answer={**STANDARD_ANSWER, "created_at": 1_700_000_000},
        ),
        "square": Emulation(
            about="JSON token requests; the answer names merchant_id and gives expires_at; the "
            "refresh token stays and is repeated. (Square sends expires_at, not expires_in; "
            "expires_in is emulated so that refresh can be exercised.)",
            code_answer={
                "access_token": "$access_token",
                "token_type": "bearer",
                "expires_at": "2026-12-31T00:00:00Z",
                "expires_in": "$expires_in",
                "merchant_id": "ML8M1AQ1GQG2K",
                "refresh_token": "$refresh_token",
                "short_lived": False,
            },
            echoes_static_refresh_token=True,
            expected_params={"merchant_id": "ML8M1AQ1GQG2K"},
            token_prefix="EAAA",
        ),
        "paypal": Emulation(
            about="Basic auth; the answer carries a nonce; the refresh token stays.",
            code_answer={**STANDARD_ANSWER, "nonce": "2026-01-01T00:00:00ZabcdEFGH"},
            token_prefix="A21AA",
        ),
        "ringcentral": Emulation(
            about="Basic auth; 7-day rotating refresh tokens; the answer names owner_id and "
            "endpoint_id; revocation is RFC 7009.",
            code_answer={
                **STANDARD_ANSWER,
                "refresh_token_expires_in": 604_800,
                "owner_id": "230919004",
                "endpoint_id": "8DSqhRvpRr2vT2Lj5ktQUA",
            },
            expected_params={"owner_id": "230919004"},
        ),
        "front": Emulation(
            about="Basic auth.",
        ),
        "pandadoc": Emulation(
            about="Scopes read and write; a standard answer.",
        ),
        "canva": Emulation(
            about="PKCE and Basic auth; single-use refresh tokens; revocation is RFC 7009.",
        ),
        "klaviyo": Emulation(
            about="PKCE and Basic auth; revocation is RFC 7009.",
        ),
        "aircall": Emulation(
            about="Tokens never expire and come without refresh token.",
            code_answer={
                "access_token": "$access_token",
                "token_type": "Bearer",
                "scope": "$scope",
                "created_at": 1_700_000_000,
            },
            expires_in=None,
        ),
        "dialpad": Emulation(
            about="offline_access for a refresh token.",
        ),
        "webflow": Emulation(
            about="Tokens never expire and come without refresh token.",
            code_answer={"access_token": "$access_token", "token_type": "Bearer"},
            expires_in=None,
        ),
        "keap": Emulation(
            about="A new refresh token on every refresh.",
            code_answer={**STANDARD_ANSWER, "token_type": "bearer"},
        ),
        "constant-contact": Emulation(
            about="Basic auth; offline_access for a refresh token; revocation is RFC 7009.",
        ),
        "wrike": Emulation(
            about="Comma-separated scopes; the answer names the account's API host.",
            code_answer={**STANDARD_ANSWER, "host": "www.wrike.com"},
            expected_params={"host": "www.wrike.com"},
        ),
        "basecamp": Emulation(
            about="type=web_server on the code exchange and type=refresh on refresh; the "
            "refresh token stays; the accounts come from GET /authorization.json.",
            code_answer={
                "access_token": "$access_token",
                "expires_in": "$expires_in",
                "refresh_token": "$refresh_token",
            },
            identity={
                "expires_at": "2026-12-31T00:00:00Z",
                "identity": {"id": 9999999, "first_name": "Ada", "last_name": "Lovelace"},
                "accounts": [
                    {
                        "product": "bc3",
                        "id": 99999999,
                        "name": "Acme",
                        "href": "https://3.basecampapi.com/99999999",
                        "app_href": "https://3.basecamp.com/99999999",
                    }
                ],
            },
            expected_params={"account_id": "99999999"},
        ),
        "help-scout": Emulation(
            about="A new refresh token on every refresh.",
            code_answer={**STANDARD_ANSWER, "token_type": "bearer"},
        ),
        "amazon": Emulation(
            about="The refresh token stays and is not repeated in refresh answers; the "
            "region (NA unless the link names EU or FE) picks the authorization and token "
            "hosts, and a code is redeemed only at its region's token host.",
            code_answer={**STANDARD_ANSWER, "token_type": "bearer"},
            expected_params={"region": "NA"},
            token_prefix="Atza|",
        ),
        "lever": Emulation(
            about="audience on the authorization request; single-use refresh tokens.",
        ),
        "deel": Emulation(
            about="Basic auth.",
        ),
        "brex": Emulation(
            about="offline_access for a refresh token.",
        ),
        "ramp": Emulation(
            about="Basic auth.",
        ),
        "adobe": Emulation(
            about="Comma-separated scopes; Basic auth; every refresh returns a new refresh "
            "token; RFC 7009 revocation.",
        ),
        "wordpress": Emulation(
            about="Tokens never expire and come without refresh token; the answer names the blog.",
            code_answer={
                "access_token": "$access_token",
                "token_type": "bearer",
                "blog_id": "12345678",
                "blog_url": "https://acme.wordpress.com",
                "scope": "",
            },
            expires_in=None,
            expected_params={"blog_id": "12345678"},
        ),
        "pagerduty": Emulation(
            about="Scopes from the app registration.",
        ),
        "todoist": Emulation(
            about="Tokens never expire and come without refresh token.",
            code_answer={"access_token": "$access_token", "token_type": "Bearer"},
            expires_in=None,
        ),
        "harvest": Emulation(
            about="The accounts come from GET /api/v2/accounts.",
            code_answer={**STANDARD_ANSWER, "token_type": "bearer"},
            identity={
                "user": {"id": 1782884, "first_name": "Ada", "last_name": "Lovelace"},
                "accounts": [{"id": 123456, "name": "Acme", "product": "harvest"}],
            },
            expected_params={"account_id": "123456"},
        ),
        "autodesk": Emulation(
            about="Basic auth with PKCE (S256); single-use refresh tokens; revocation is RFC 7009.",
        ),
        "procore": Emulation(
            about="created_at in the answer; revocation is a form POST of token with the "
            "client credentials.",
            code_answer={**STANDARD_ANSWER, "created_at": 1_700_000_000},
        ),
        "exact-online": Emulation(
            about="The country site is in every URL; Basic auth; 10-minute tokens (shorter "
            "than the emulator default) and a new refresh token on every refresh.",
            link_params={"extension": "nl"},
            code_answer={**STANDARD_ANSWER, "token_type": "bearer"},
            expires_in=600,
            expected_params={"extension": "nl"},
        ),
        "myob": Emulation(
            about="The chosen business arrives as businessId on the callback; the answer "
            "describes the user.",
            callback_params={"businessId": MYOB_BUSINESS_ID},
            code_answer={
                **STANDARD_ANSWER,
                "token_type": "bearer",
                "user": {"uid": "b2b1a3c4-0000-4000-8000-000000000000", "username": "ada"},
            },
            expected_params={"business_id": MYOB_BUSINESS_ID},
        ),
        "snowflake": Emulation(
            about="The account host is in every URL; PKCE and Basic auth; single-use refresh "
            "tokens; the answer names the user and refresh_token_expires_in.",
            link_params={"account_host": "myorg-myaccount.snowflakecomputing.com"},
            code_answer={
                **STANDARD_ANSWER,
                "refresh_token_expires_in": 7_776_000,
                "username": "ADA",
            },
            expires_in=600,
            expected_params={"account_host": "myorg-myaccount.snowflakecomputing.com"},
        ),
        "productboard": Emulation(
            about="A standard answer.",
        ),
        "strava": Emulation(
            about="Comma-separated scopes; the code-exchange answer has expires_at and a summary "
            "athlete, refresh answers do not have the athlete; revocation is a form POST of "
            "access_token only.",
            code_answer={
                "token_type": "Bearer",
                "expires_at": 1_700_021_600,
                "expires_in": "$expires_in",
                "refresh_token": "$refresh_token",
                "access_token": "$access_token",
                "athlete": {"id": 134815, "username": "ada", "firstname": "Ada"},
            },
            refresh_answer={
                "token_type": "Bearer",
                "access_token": "$access_token",
                "expires_at": 1_700_021_600,
                "expires_in": "$expires_in",
                "refresh_token": "$refresh_token",
            },
            expected_params={"athlete_id": "134815"},
        ),
        "zendesk-sell": Emulation(
            about="Basic auth.",
            code_answer={**STANDARD_ANSWER, "token_type": "bearer"},
        ),
        "close": Emulation(
            about="offline_access for a refresh token; single-use refresh tokens; the answer "
            "names user_id and organization_id.",
            code_answer={
                **STANDARD_ANSWER,
                "user_id": "user_8Gf1hFqNkC8qCDkt1Gp5wW",
                "organization_id": "orga_bwwWG475zqWiQGur0thQshwVXo8rIYecQHDWFanqhen",
            },
            expected_params={"organization_id": "orga_bwwWG475zqWiQGur0thQshwVXo8rIYecQHDWFanqhen"},
        ),
    }
)
