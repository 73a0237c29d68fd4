"""Discovery: a :class:`ProviderSpec` from the metadata an issuer publishes.

Two documents are read: OpenID Connect Discovery 1.0 (``{issuer}/.well-known/
openid-configuration``, appended to the issuer) and RFC 8414 authorization-server metadata
(``/.well-known/oauth-authorization-server`` inserted between the host and the issuer's
path). The OpenID document comes first; the RFC 8414 one fills the fields it omits (a
``revocation_endpoint``, as django-oauth-toolkit publishes it). Either may be missing (a 4xx
answer), not both; each one present must name exactly the configured issuer (RFC 8414 §3.3).

:func:`metadata_urls` and :func:`spec_from_responses` are pure; :func:`discover` and
:func:`discover_async` only add the GETs between them, so both flavours check the documents
the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from oauthvault.errors import ConfigError, ProviderError
from oauthvault.providers.spec import ProviderSpec, RefreshTokens, TokenEndpointAuthMethod
from oauthvault.providers.tables import TableReader, check_url

__all__ = [
    "OAUTH_WELL_KNOWN_PATH",
    "WELL_KNOWN_PATH",
    "discover",
    "discover_async",
    "discovery_url",
    "metadata_url",
    "metadata_urls",
    "spec_from_responses",
]

WELL_KNOWN_PATH = "/.well-known/openid-configuration"
OAUTH_WELL_KNOWN_PATH = "/.well-known/oauth-authorization-server"
# oauthvault authenticates with its client secret; Basic is the OIDC default.
_AUTH_PREFERENCE: tuple[TokenEndpointAuthMethod, ...] = (
    "client_secret_basic",
    "client_secret_post",
)
_INVALID = "invalid_discovery_document"
_UNAVAILABLE = "temporarily_unavailable"
# The documents by the names errors use for them, in the order they are read and merged.
_DOCUMENTS = ("openid-configuration", "oauth-authorization-server")
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


def metadata_url(issuer: str, *, name: str | None = None) -> str:
    """The URL of ``issuer``'s RFC 8414 authorization-server metadata (§3): the well-known
    path goes between the host and the issuer's path (``https://h/tenant`` →
    ``https://h/.well-known/oauth-authorization-server/tenant``).

    Raises:
        ConfigError: as :func:`discovery_url`.
    """
    discovery_url(issuer, name=name)  # the same checks
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}{OAUTH_WELL_KNOWN_PATH}{parts.path.rstrip('/')}"


def metadata_urls(issuer: str, *, name: str | None = None) -> tuple[str, str]:
    """The OpenID Connect and the RFC 8414 document URLs of ``issuer``, in the order read.

    Raises:
        ConfigError: as :func:`discovery_url`.
    """
    return discovery_url(issuer, name=name), metadata_url(issuer, name=name)


def _strings(document: Mapping[str, object], key: str) -> tuple[str, ...] | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ProviderError(_INVALID, f"{key} is not a list of strings")
    return tuple(value)


def _check_issuer(issuer: str, document: Mapping[str, object], name: str | None) -> None:
    published = document.get("issuer")
    if published != issuer:
        shown = repr(published)[:_SHOWN_ISSUER_LENGTH]
        raise ConfigError(
            _issuer_setting(name),
            f"does not exactly match the issuer in the discovery document ({shown})",
        )


def _auth_method(document: Mapping[str, object]) -> tuple[TokenEndpointAuthMethod, bool]:
    """The client authentication to use, and whether the revocation endpoint takes it too.

    A method both endpoints take is preferred; an absent list means ``client_secret_basic``
    only (OIDC Discovery §3, RFC 8414 §2).
    """
    token = _strings(document, "token_endpoint_auth_methods_supported") or ("client_secret_basic",)
    revocation = _strings(document, "revocation_endpoint_auth_methods_supported")
    usable = [m for m in _AUTH_PREFERENCE if m in token]
    if not usable:
        raise ProviderError(_INVALID, "supports neither client_secret_basic nor _post")
    if revocation is None:  # unpublished: assume it takes what the token endpoint takes
        return usable[0], True
    both = [m for m in usable if m in revocation]
    return (both[0], True) if both else (usable[0], False)


def _default_scopes(scopes: tuple[str, ...], openid: bool) -> tuple[str, ...]:
    """``openid`` (plus ``offline_access`` when offered) for an OpenID provider; for a
    plain OAuth server only those of the two it offers."""
    if openid:
        return ("openid", "offline_access") if "offline_access" in scopes else ("openid",)
    return tuple(scope for scope in ("openid", "offline_access") if scope in scopes)


def _spec_from_document(
    issuer: str, document: Mapping[str, object], name: str | None, *, openid: bool
) -> ProviderSpec:
    # Loopback http endpoints only from a loopback http issuer: a remote provider must not
    # make oauthvault send client secrets to a local plain-text service.
    local = urlsplit(issuer).scheme == "http"
    reader = TableReader(document, "discovery")
    try:
        urls = {
            key: reader.url(key, allow_loopback_http=local)
            for key in (
                "authorization_endpoint",
                "token_endpoint",
                "userinfo_endpoint",
                "revocation_endpoint",
                "introspection_endpoint",
            )
        }
    except ConfigError as error:
        raise ProviderError(_INVALID, f"{error.setting}: {error.problem}") from None
    authorization_endpoint, token_endpoint = urls["authorization_endpoint"], urls["token_endpoint"]
    if authorization_endpoint is None or token_endpoint is None:
        raise ProviderError(_INVALID, "authorization_endpoint and token_endpoint are required")
    method, revocable = _auth_method(document)
    scopes = _strings(document, "scopes_supported") or ()
    grants = _strings(document, "grant_types_supported")
    # Whether refresh tokens rotate is not published: keep the newest one, as for the
    # catalog's unclear providers. No refresh grant advertised means none are issued.
    refresh: RefreshTokens = "rotating"
    if grants is not None and "refresh_token" not in grants:
        refresh = "none"
    # A revocation endpoint that takes no client authentication we can send is no use.
    revocation = urls["revocation_endpoint"] if revocable else None
    return ProviderSpec(
        name=name or (urlsplit(issuer).hostname or "oidc"),
        display_name=name or issuer,
        authorization_endpoint=authorization_endpoint,
        token_endpoint=token_endpoint,
        default_scopes=_default_scopes(scopes, openid),
        token_endpoint_auth_method=method,
        pkce="S256" in (_strings(document, "code_challenge_methods_supported") or ()),
        refresh_tokens=refresh,
        revocation_endpoint=revocation,
        revocation_method="rfc7009" if revocation is not None else None,
        userinfo_endpoint=urls["userinfo_endpoint"],
        introspection_endpoint=urls["introspection_endpoint"],
        issuer=issuer,
    )


def _document(
    issuer: str, label: str, response: httpx.Response, name: str | None
) -> dict[str, object] | None:
    """The checked document of one answer, or ``None`` when it is not published (4xx)."""
    status = response.status_code
    if status >= 500:
        raise ProviderError(_UNAVAILABLE, f"discovery ({label}) answered {status}")
    if 400 <= status < 500:
        return None
    if status != 200:
        raise ProviderError(_INVALID, f"discovery ({label}) answered HTTP {status}")
    try:
        document = response.json()
    except ValueError:
        raise ProviderError(_INVALID, f"the {label} document is not JSON") from None
    if not isinstance(document, dict):
        raise ProviderError(_INVALID, f"the {label} document is not a JSON object")
    _check_issuer(issuer, document, name)
    return document


def spec_from_responses(
    issuer: str, openid: httpx.Response, oauth: httpx.Response, *, name: str | None
) -> ProviderSpec:
    """Check the two discovery answers for ``issuer`` and build the spec they describe.

    ``openid`` answered the OpenID Connect URL and ``oauth`` the RFC 8414 one (see
    :func:`metadata_urls`). A 4xx answer means that document is not published; the
    OpenID document's fields win and the RFC 8414 one fills those it lacks. The spec uses
    PKCE when ``S256`` is offered, ``client_secret_basic`` (else ``_post``; one the
    revocation endpoint also takes, when it says which), scopes ``openid`` plus
    ``offline_access`` when offered (without an OpenID document, only those of the two
    that are offered), RFC 7009 revocation when a revocation endpoint is published, and
    treats refresh tokens as rotating unless no ``refresh_token`` grant is offered.

    Raises:
        ConfigError: a document's ``issuer`` is not exactly ``issuer``.
        ProviderError: ``temporarily_unavailable`` on HTTP 5xx; ``invalid_discovery_document``
            when neither document is published, or on a non-JSON body, or missing or
            malformed metadata.
    """
    documents = [
        _document(issuer, label, response, name)
        for label, response in zip(_DOCUMENTS, (openid, oauth), strict=True)
    ]
    found = [document for document in documents if document is not None]
    if not found:
        raise ProviderError(
            _INVALID,
            f"neither discovery document is published (HTTP {openid.status_code} for "
            f"{WELL_KNOWN_PATH}, HTTP {oauth.status_code} for {OAUTH_WELL_KNOWN_PATH})",
        )
    merged: dict[str, object] = {}
    for document in reversed(found):  # the OpenID document last: its fields win
        merged |= {key: value for key, value in document.items() if value is not None}
    return _spec_from_document(issuer, merged, name, openid=documents[0] is not None)


def _unreachable(error: httpx.HTTPError) -> ProviderError:
    return ProviderError(_UNAVAILABLE, f"discovery failed: {type(error).__name__}")


_HEADERS = {"Accept": "application/json"}


def discover(issuer: str, client: httpx.Client, *, name: str | None = None) -> ProviderSpec:
    """Fetch ``issuer``'s OpenID Connect and RFC 8414 metadata and build its spec.

    ``name`` names the spec and the settings in errors (default: the issuer's host).

    Raises:
        ConfigError: ``issuer`` is malformed or differs from the one the provider publishes.
        ProviderError: the documents could not be fetched or are unusable
            (see :func:`spec_from_responses`).
    """
    urls = metadata_urls(issuer, name=name)
    try:
        openid, oauth = (client.get(url, headers=_HEADERS) for url in urls)
    except httpx.HTTPError as error:
        raise _unreachable(error) from error
    return spec_from_responses(issuer, openid, oauth, name=name)


async def discover_async(
    issuer: str, client: httpx.AsyncClient, *, name: str | None = None
) -> ProviderSpec:
    """:func:`discover` with an ``httpx.AsyncClient``; same requests, result and errors."""
    urls = metadata_urls(issuer, name=name)
    try:
        openid, oauth = [await client.get(url, headers=_HEADERS) for url in urls]
    except httpx.HTTPError as error:
        raise _unreachable(error) from error
    return spec_from_responses(issuer, openid, oauth, name=name)
