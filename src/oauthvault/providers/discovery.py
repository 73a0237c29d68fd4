"""OpenID Connect discovery: a :class:`ProviderSpec` from an issuer's published metadata.

:func:`discovery_url` and :func:`spec_from_response` are pure; :func:`discover` and
:func:`discover_async` only add the one GET between them, so both flavours check the
document the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from oauthvault.errors import ConfigError, ProviderError
from oauthvault.providers.spec import ProviderSpec, RefreshTokens, TokenEndpointAuthMethod
from oauthvault.providers.tables import TableReader, check_url

__all__ = ["WELL_KNOWN_PATH", "discover", "discover_async", "discovery_url", "spec_from_response"]

WELL_KNOWN_PATH = "/.well-known/openid-configuration"
# oauthvault authenticates with its client secret; Basic is the OIDC default.
_AUTH_PREFERENCE: tuple[TokenEndpointAuthMethod, ...] = (
    "client_secret_basic",
    "client_secret_post",
)
_INVALID = "invalid_discovery_document"
_SHOWN_ISSUER_LENGTH = 200


def _issuer_setting(name: str | None) -> str:
    return f"providers.{name}.issuer" if name else "issuer"


def discovery_url(issuer: str, *, name: str | None = None) -> str:
    """The URL of ``issuer``'s discovery document (OpenID Connect Discovery 1.0 §4).

    Raises:
        ConfigError: ``issuer`` is not an https URL (http only on loopback hosts) without
            query or fragment; ``.setting`` is ``providers.<name>.issuer``.
    """
    setting = _issuer_setting(name)
    check_url(setting, issuer, allow_loopback_http=True)
    if urlsplit(issuer).query:
        raise ConfigError(setting, "must not have a query")
    return issuer.rstrip("/") + WELL_KNOWN_PATH


def _strings(document: Mapping[str, object], key: str) -> tuple[str, ...] | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ProviderError(_INVALID, f"{key} is not a list of strings")
    return tuple(value)


def _spec_from_document(
    issuer: str, document: Mapping[str, object], name: str | None
) -> ProviderSpec:
    published = document.get("issuer")
    if published != issuer:
        shown = repr(published)[:_SHOWN_ISSUER_LENGTH]
        raise ConfigError(
            _issuer_setting(name),
            f"does not exactly match the issuer in the discovery document ({shown})",
        )
    # Loopback http endpoints only from a loopback http issuer: a remote provider must not
    # make oauthvault send client secrets to a local plain-text service.
    local = urlsplit(issuer).scheme == "http"
    reader = TableReader(document, "openid-configuration")
    try:
        urls = {
            key: reader.url(key, allow_loopback_http=local)
            for key in (
                "authorization_endpoint",
                "token_endpoint",
                "userinfo_endpoint",
                "revocation_endpoint",
            )
        }
    except ConfigError as error:
        raise ProviderError(_INVALID, f"{error.setting}: {error.problem}") from None
    authorization_endpoint, token_endpoint = urls["authorization_endpoint"], urls["token_endpoint"]
    if authorization_endpoint is None or token_endpoint is None:
        raise ProviderError(_INVALID, "authorization_endpoint and token_endpoint are required")
    # OIDC Discovery §3: an absent list means client_secret_basic only.
    methods = _strings(document, "token_endpoint_auth_methods_supported")
    supported = methods if methods is not None else ("client_secret_basic",)
    method = next((m for m in _AUTH_PREFERENCE if m in supported), None)
    if method is None:
        raise ProviderError(_INVALID, "supports neither client_secret_basic nor _post")
    scopes = _strings(document, "scopes_supported") or ()
    grants = _strings(document, "grant_types_supported")
    # Whether refresh tokens rotate is not published: keep the newest one, as for the
    # catalog's unclear providers. No refresh grant advertised means none are issued.
    refresh: RefreshTokens = "rotating"
    if grants is not None and "refresh_token" not in grants:
        refresh = "none"
    revocation = urls["revocation_endpoint"]
    return ProviderSpec(
        name=name or (urlsplit(issuer).hostname or "oidc"),
        display_name=name or issuer,
        authorization_endpoint=authorization_endpoint,
        token_endpoint=token_endpoint,
        default_scopes=("openid", "offline_access") if "offline_access" in scopes else ("openid",),
        token_endpoint_auth_method=method,
        pkce="S256" in (_strings(document, "code_challenge_methods_supported") or ()),
        refresh_tokens=refresh,
        revocation_endpoint=revocation,
        revocation_method="rfc7009" if revocation is not None else None,
        userinfo_endpoint=urls["userinfo_endpoint"],
        issuer=issuer,
    )


def spec_from_response(issuer: str, response: httpx.Response, *, name: str | None) -> ProviderSpec:
    """Check a discovery response for ``issuer`` and build the spec it describes.

    The spec uses PKCE when ``S256`` is offered, ``client_secret_basic`` (else ``_post``),
    scopes ``openid`` plus ``offline_access`` when offered, and treats refresh tokens as
    rotating unless no ``refresh_token`` grant is offered.

    Raises:
        ConfigError: the document's ``issuer`` is not exactly ``issuer``.
        ProviderError: ``temporarily_unavailable`` on HTTP 5xx; ``invalid_discovery_document``
            on any other non-200 answer, non-JSON body, or missing or malformed metadata.
    """
    if response.status_code >= 500:
        raise ProviderError("temporarily_unavailable", f"discovery answered {response.status_code}")
    if response.status_code != 200:
        raise ProviderError(_INVALID, f"discovery answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise ProviderError(_INVALID, "the discovery document is not JSON") from None
    if not isinstance(document, dict):
        raise ProviderError(_INVALID, "the discovery document is not a JSON object")
    return _spec_from_document(issuer, document, name)


def _unreachable(error: httpx.HTTPError) -> ProviderError:
    return ProviderError("temporarily_unavailable", f"discovery failed: {type(error).__name__}")


def discover(issuer: str, client: httpx.Client, *, name: str | None = None) -> ProviderSpec:
    """Fetch ``{issuer}/.well-known/openid-configuration`` and build its spec.

    ``name`` names the spec and the settings in errors (default: the issuer's host).

    Raises:
        ConfigError: ``issuer`` is malformed or differs from the one the provider publishes.
        ProviderError: the document could not be fetched or is unusable
            (see :func:`spec_from_response`).
    """
    url = discovery_url(issuer, name=name)
    try:
        response = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise _unreachable(error) from error
    return spec_from_response(issuer, response, name=name)


async def discover_async(
    issuer: str, client: httpx.AsyncClient, *, name: str | None = None
) -> ProviderSpec:
    """:func:`discover` with an ``httpx.AsyncClient``; same result and errors."""
    url = discovery_url(issuer, name=name)
    try:
        response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise _unreachable(error) from error
    return spec_from_response(issuer, response, name=name)
