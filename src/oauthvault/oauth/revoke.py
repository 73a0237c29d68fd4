"""Revoking a grant at the provider, sync and async, as its catalog entry describes.

``revocation_method = "rfc7009"``: a form POST of ``token`` and ``token_type_hint`` with
the client authenticated as at the token endpoint (RFC 7009). ``"custom"``: the entry's
``revocation_request`` says the HTTP method, the client authentication, whether the token
goes as a bearer token or in a form, JSON or query field, which token, extra headers, and a
JSON field that must be ``true`` in the answer (Slack's ``ok``).

The refresh token is revoked when there is one and the entry allows it (that ends the whole
grant at most providers), else the access token. The answer is reported honestly: ``True``
only when the provider confirmed (2xx, and the success field when there is one), ``False``
when it refused or could not be reached, ``None`` when it has no revocation endpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Generator
from urllib.parse import urlencode, urlsplit

import httpx

from oauthvault.errors import ConfigError
from oauthvault.models import TokenSet
from oauthvault.oauth.client_auth import client_secret_for
from oauthvault.oauth.token_request import HttpRequest, HttpResponse, run_async, run_sync
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.params import pick
from oauthvault.providers.spec import ProviderSpec

__all__ = ["revocation_request", "revoke_grant", "revoke_grant_async", "revoke_tokens_async"]

logger = logging.getLogger("oauthvault.providers")


def revocation_request(config: ProviderConfig, tokens: TokenSet) -> HttpRequest | None:
    """The request that revokes this connection's grant, or ``None`` when the provider has
    no revocation endpoint (pure)."""
    spec = config.spec_for(tokens.params)
    url = spec.revocation_endpoint
    if url is None or spec.revocation_method is None:
        return None
    client_id, secret = config.client_id, client_secret_for(config, spec)
    own = tokens.client_credentials
    if own is not None and own.client_id is not None:  # a customer's client issued it
        client_id, secret = own.client_id, own.client_secret
    headers = {"Accept": "application/json"}
    if spec.revocation_method == "rfc7009":
        token, hint = (
            (tokens.refresh_token, "refresh_token")
            if tokens.refresh_token
            else (tokens.access_token, "access_token")
        )
        form = {"token": token, "token_type_hint": hint}
        if spec.token_endpoint_auth_method == "client_secret_basic":  # noqa: S105
            credentials = (client_id, secret or "")
            return HttpRequest("POST", url, headers, form=form, basic_auth=credentials)
        form |= {"client_id": client_id, **({"client_secret": secret} if secret else {})}
        return HttpRequest("POST", url, headers, form=form)
    shape = spec.revocation_request
    if shape is None:  # pragma: no cover - the catalog requires it for custom revocation
        raise ConfigError(f"providers.{spec.name}.revocation_request", "is missing")
    token = tokens.access_token
    if shape.token == "refresh_or_access" and tokens.refresh_token:  # noqa: S105
        token = tokens.refresh_token
    headers |= dict(shape.headers)
    fields: dict[str, str] = {}
    basic: tuple[str, str] | None = None
    if shape.client_auth == "basic":
        basic = (client_id, secret or "")
    elif shape.client_auth == "post":
        fields |= {"client_id": client_id, "client_secret": secret or ""}
    elif shape.client_auth == "client_id":
        fields["client_id"] = client_id
    if shape.bearer:
        headers["Authorization"] = f"Bearer {token}"
    else:
        fields[shape.token_param] = token
    if shape.body == "json":
        return HttpRequest(shape.http_method, url, headers, json_body=fields, basic_auth=basic)
    if shape.body == "query":
        joiner = "&" if urlsplit(url).query else "?"
        url = f"{url}{joiner}{urlencode(fields)}" if fields else url
        return HttpRequest(shape.http_method, url, headers, basic_auth=basic)
    if shape.body == "none":
        return HttpRequest(shape.http_method, url, headers, basic_auth=basic)
    return HttpRequest(shape.http_method, url, headers, form=fields, basic_auth=basic)


def confirmed(spec: ProviderSpec, response: HttpResponse) -> bool:
    """Whether the provider's answer confirms the revocation (pure)."""
    if response.failure is not None:
        logger.warning("revocation at %s failed: %s", spec.name, response.failure)
        return False
    if not 200 <= response.status < 300:
        logger.warning("%s refused revocation: HTTP %s", spec.name, response.status)
        return False
    field = spec.revocation_request.success_field if spec.revocation_request else None
    if field is None:
        return True
    try:
        document = json.loads(response.body)
    except ValueError:
        document = None
    if pick(document, field) is not True:
        logger.warning("%s refused revocation: %s is not true", spec.name, field)
        return False
    return True


def _revocation(
    config: ProviderConfig, tokens: TokenSet
) -> Generator[HttpRequest, HttpResponse, bool | None]:
    """The whole revocation as a flow: build the request, send it, read the answer."""
    try:
        request = revocation_request(config, tokens)
    except ConfigError as error:  # e.g. a stored parameter the URL needs is missing
        logger.warning("cannot revoke at %s: %s", config.name, error)
        return False
    if request is None:
        return None
    response = yield request
    return confirmed(config.spec_for(tokens.params), response)


def revoke_grant(config: ProviderConfig, tokens: TokenSet, *, timeout: float = 10.0) -> bool | None:
    """Ask the provider to revoke; see the module docstring for the answer."""
    with httpx.Client(timeout=timeout) as http:
        result: bool | None = run_sync(_revocation(config, tokens), http)
    return result


async def revoke_grant_async(
    config: ProviderConfig, tokens: TokenSet, *, timeout: float = 10.0
) -> bool | None:
    """The asyncio twin of :func:`revoke_grant`."""
    async with httpx.AsyncClient(timeout=timeout) as http:
        result: bool | None = await run_async(_revocation(config, tokens), http)
    return result


def _every_token(
    config: ProviderConfig, tokens: TokenSet
) -> Generator[HttpRequest, HttpResponse, bool | None]:
    """The refresh token's revocation, then (RFC 7009) the access token's too, for a
    provider that keeps an access token alive after its refresh token is revoked."""
    revoked = yield from _revocation(config, tokens)
    spec = config.spec_for(tokens.params)
    if tokens.refresh_token and spec.revocation_method == "rfc7009":
        access_only = dataclasses.replace(tokens, refresh_token=None)
        access_revoked = yield from _revocation(config, access_only)
        revoked = bool(revoked and access_revoked)
    return revoked


async def revoke_tokens_async(
    config: ProviderConfig, tokens: TokenSet, http: httpx.AsyncClient
) -> bool | None:
    """Revoke ``tokens`` with ``http``: the refresh token (or the token the catalog's
    ``revocation_request`` names), then with RFC 7009 the access token as well. ``True``
    only when the provider confirmed each, ``None`` when it cannot revoke; failures are
    logged (never a token) and never raised."""
    result: bool | None = await run_async(_every_token(config, tokens), http)
    return result
