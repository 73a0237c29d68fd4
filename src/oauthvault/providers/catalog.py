"""The provider catalog: endpoints and habits of the OAuth providers oauthvault knows.

The data lives in ``providers.toml`` next to this module (its header comment documents the
schema); :func:`load_catalog` reads and checks it once. Each entry becomes a
:class:`~oauthvault.providers.spec.ProviderSpec`; :func:`parse_spec` also checks the
tables of providers a deployment configures itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

from oauthvault.errors import ConfigError
from oauthvault.providers.params import ConnectionParam, default_for, parse_params
from oauthvault.providers.rate_limits import (
    read_api_headers,
    read_rate_limit_headers,
    read_rate_limit_reset,
)
from oauthvault.providers.spec import (
    URL_KEYS,
    ClientSecretKind,
    ExpirySource,
    ProviderSpec,
    RefreshTokens,
    RevocationMethod,
    RevocationRequest,
    ScopeSeparator,
    TokenBody,
    TokenEndpointAuthMethod,
    check_api_base_url,
    param_of,
    placeholders_in,
    read_api_hosts,
)
from oauthvault.providers.tables import TableReader, catalog_tables

__all__ = [
    "CATALOG_KEYS",
    "CATALOG_REQUIRED",
    "CUSTOM_KEYS",
    "RESERVED_PARAMS",
    "check_provider_name",
    "load_catalog",
    "parse_catalog",
    "parse_spec",
]

_REFRESH: tuple[RefreshTokens, ...] = ("none", "static", "rotating")
_REVOCATION: tuple[RevocationMethod, ...] = ("rfc7009", "custom")
_SEPARATORS: tuple[ScopeSeparator, ...] = (" ", ",")
_AUTH_METHODS: tuple[TokenEndpointAuthMethod, ...] = (
    "client_secret_post",
    "client_secret_basic",
    "private_key_jwt",
    "client_secret_jwt",
)
# Providers configured by users authenticate with their client secret, nothing else.
_CUSTOM_AUTH_METHODS: tuple[TokenEndpointAuthMethod, ...] = (
    "client_secret_basic",
    "client_secret_post",
)
_SECRET_KINDS: tuple[ClientSecretKind, ...] = ("apple_es256_jwt",)

_BODIES: tuple[TokenBody, ...] = ("form", "json")
_EXPIRY: tuple[ExpirySource, ...] = ("answer", "introspection")
_HTTP_METHODS = ("POST", "DELETE")
_REVOKE_CLIENT_AUTH = ("basic", "post", "client_id", "none")
_REVOKE_BODY = ("form", "json", "query", "none")
_REVOKE_TOKEN = ("refresh_or_access", "access")
_REVOCATION_KEYS = frozenset(
    "http_method client_auth bearer body token_param token headers success_field".split()
)
_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
# Endpoints used before the callback: a callback parameter cannot fill them.
_BEFORE_CALLBACK = frozenset({"authorization_endpoint", "issuer"})
# The sources known when each kind of URL is used: the API is called once the connection
# exists, so its identity values are known too.
_IN_TIME = ("link", "token", "callback")
_IN_TIME_API = ("link", "token", "callback", "identity")
# Parameters the authorization request sets itself; overriding them would break the flow.
RESERVED_PARAMS = frozenset(
    "client_id code_challenge code_challenge_method redirect_uri response_type scope state".split()
)
# Parameters the token and refresh requests set themselves.
RESERVED_TOKEN_PARAMS = frozenset(
    "client_id client_secret code code_verifier grant_type redirect_uri refresh_token".split()
)

#: Keys every catalog entry must have.
CATALOG_REQUIRED = frozenset(
    """display_name authorization_endpoint token_endpoint default_scopes scope_separator
    token_endpoint_auth_method pkce refresh_tokens docs_url notes""".split()
)
#: Every key a catalog entry may have (README's catalog schema table lists them all).
CATALOG_KEYS = CATALOG_REQUIRED | set(
    """revocation_endpoint revocation_method revocation_note revocation_request
    userinfo_endpoint issuer extra_authorize_params client_secret_kind access_token_lifetime
    refresh_token_idle_expiry_days connection_params token_params refresh_params token_body
    refresh_endpoint token_path secondary_token_path success_field dead_grant_errors
    error_fields expiry introspection_endpoint identity_endpoint client_credentials
    independent_grants api_base_url api_hosts api_headers rate_limit_headers
    rate_limit_reset""".split()
)
#: Spec keys a ``[providers.<name>]`` table of a provider outside the catalog may set.
CUSTOM_KEYS = frozenset(
    """display_name authorization_endpoint token_endpoint revocation_endpoint userinfo_endpoint
    issuer scope_separator token_endpoint_auth_method pkce refresh_tokens access_token_lifetime
    refresh_token_idle_expiry_days independent_grants api_base_url api_hosts api_headers
    rate_limit_headers rate_limit_reset""".split()
)


def _check_placeholders(
    reader: TableReader, params: tuple[ConnectionParam, ...], urls: dict[str, str]
) -> None:
    by_name = {param.name: param for param in params}
    for key, url in urls.items():
        for placeholder in placeholders_in(url):
            if placeholder == "client_id" and key != "api_base_url":
                continue
            name = param_of(placeholder)
            param = by_name.get(name)
            if param is None:
                raise ConfigError(
                    reader.setting(key), f"uses {{{placeholder}}}, not a connection param"
                )
            word = placeholder.removeprefix(f"{name}.") if placeholder != name else None
            if word is not None and all(known != word for known, _ in param.hosts):
                raise ConfigError(reader.setting(key), f"uses {{{placeholder}}}, no such hosts")
            if param.source == "callback" and key in _BEFORE_CALLBACK:
                raise ConfigError(reader.setting(key), f"uses {{{name}}}, not known in time")
            if param.source not in (_IN_TIME_API if key == "api_base_url" else _IN_TIME):
                raise ConfigError(reader.setting(key), f"uses {{{name}}}, not known in time")
            if param.pattern is None:
                setting = reader.setting(f"connection_params.{name}.pattern")
                raise ConfigError(setting, "is required for a parameter used in a URL")
            if param.source == "callback" and _example_default(param, params) is None:
                setting = reader.setting(f"connection_params.{name}.default")
                raise ConfigError(
                    setting, "is required (matching the pattern) for a callback value in a URL"
                )


def _example_default(param: ConnectionParam, params: tuple[ConnectionParam, ...]) -> str | None:
    """A callback parameter's default filled with the example (else default) of each link
    parameter it names: ``None`` when it has none, names another kind, or does not match."""
    examples = {
        p.name: value
        for p in params
        if p.source == "link" and (value := p.example or p.default) is not None
    }
    return default_for(param, examples)


def _parse_revocation(reader: TableReader) -> RevocationRequest | None:
    tables = reader.sub_tables("revocation_request")
    if tables is None:
        return None
    sub = TableReader(tables, reader.setting("revocation_request"))
    sub.check_keys(_REVOCATION_KEYS)
    return RevocationRequest(
        http_method=sub.choice("http_method", _HTTP_METHODS) or "POST",
        client_auth=sub.choice("client_auth", _REVOKE_CLIENT_AUTH) or "none",
        bearer=sub.boolean("bearer") is True,
        body=sub.choice("body", _REVOKE_BODY) or "form",
        token_param=sub.word("token_param") or "token",
        token=sub.choice("token", _REVOKE_TOKEN) or "refresh_or_access",
        headers=MappingProxyType(sub.string_map("headers") or {}),
        success_field=sub.word("success_field"),
    )


def _check_params_map(reader: TableReader, key: str) -> dict[str, str] | None:
    values = reader.string_map(key)
    for name in sorted(values or ()):
        if name in RESERVED_TOKEN_PARAMS:
            raise ConfigError(reader.setting(f"{key}.{name}"), "is set by the token request")
    return values


def parse_spec(name: str, reader: TableReader, *, catalog: bool) -> ProviderSpec:
    """Build a :class:`ProviderSpec` from a catalog entry or a custom provider's table.

    A catalog entry must have every required key and https URLs. A custom table
    (``catalog=False``) may only set :data:`CUSTOM_KEYS`, needs both endpoints, may use
    http on loopback hosts, and gets defaults for the rest (``client_secret_basic``,
    PKCE on, static refresh tokens, scopes separated by spaces).

    Raises:
        ConfigError: naming the provider and the first key that is unknown, missing or bad.
    """
    if catalog:
        reader.check_keys(CATALOG_KEYS, CATALOG_REQUIRED)
    else:
        reader.check_keys(CUSTOM_KEYS, ("authorization_endpoint", "token_endpoint"))
    urls = {
        key: url
        for key in (*URL_KEYS, "docs_url")
        if (url := reader.url(key, allow_loopback_http=not catalog)) is not None
    }
    if "api_base_url" in urls:
        check_api_base_url(reader.setting("api_base_url"), urls["api_base_url"])
    api_hosts = read_api_hosts(reader)
    if api_hosts is not None and "api_base_url" not in urls:
        raise ConfigError(reader.setting("api_hosts"), "goes with api_base_url")
    api_headers = read_api_headers(reader)
    rate_limit_headers = read_rate_limit_headers(reader)
    rate_limit_reset = read_rate_limit_reset(reader, rate_limit_headers)
    for key, value in (("api_headers", api_headers), ("rate_limit_headers", rate_limit_headers)):
        if value is not None and "api_base_url" not in urls:
            raise ConfigError(reader.setting(key), "goes with api_base_url")
    params = parse_params(reader, "connection_params") if catalog else ()
    _check_placeholders(reader, params, urls)
    separator = reader.choice("scope_separator", _SEPARATORS) or " "
    scopes = reader.words("default_scopes") or ()
    if separator == "," and any("," in scope for scope in scopes):
        raise ConfigError(reader.setting("default_scopes"), "a scope contains the separator")
    authorize_params = reader.string_map("extra_authorize_params") or {}
    for param in sorted(authorize_params):
        if param in RESERVED_PARAMS:
            setting = reader.setting(f"extra_authorize_params.{param}")
            raise ConfigError(setting, "is set by the authorization request itself")
    methods = _AUTH_METHODS if catalog else _CUSTOM_AUTH_METHODS
    revocation_method = reader.choice("revocation_method", _REVOCATION)
    if "revocation_endpoint" in urls and revocation_method is None and not catalog:
        revocation_method = "rfc7009"
    if ("revocation_endpoint" in urls) != (revocation_method is not None):
        raise ConfigError(reader.setting("revocation_method"), "goes with revocation_endpoint")
    note = reader.text("revocation_note")
    if revocation_method == "custom" and note is None:
        raise ConfigError(reader.setting("revocation_note"), "is required for custom revocation")
    if revocation_method != "custom" and note is not None:
        raise ConfigError(reader.setting("revocation_note"), "only goes with custom revocation")
    revocation = _parse_revocation(reader)
    if (revocation_method == "custom") != (revocation is not None):
        setting = reader.setting("revocation_request")
        raise ConfigError(setting, "describes custom revocation, and is required for it")
    for key in ("token_path", "secondary_token_path", "success_field"):
        path = reader.word(key)
        if path is not None and not _PATH.match(path):
            raise ConfigError(reader.setting(key), "must be dot-separated names")
    expiry = reader.choice("expiry", _EXPIRY) or "answer"
    if (expiry == "introspection") != ("introspection_endpoint" in urls):
        raise ConfigError(reader.setting("expiry"), "introspection goes with its endpoint")
    return ProviderSpec(
        name=name,
        display_name=reader.text("display_name") or name,
        authorization_endpoint=urls["authorization_endpoint"],
        token_endpoint=urls["token_endpoint"],
        default_scopes=scopes,
        scope_separator=separator,
        extra_authorize_params=authorize_params,
        token_endpoint_auth_method=reader.choice("token_endpoint_auth_method", methods)
        or "client_secret_basic",
        pkce=reader.boolean("pkce") is not False,
        refresh_tokens=reader.choice("refresh_tokens", _REFRESH) or "rotating",
        revocation_endpoint=urls.get("revocation_endpoint"),
        revocation_method=revocation_method,
        revocation_note=note,
        userinfo_endpoint=urls.get("userinfo_endpoint"),
        issuer=urls.get("issuer"),
        connection_params=params,
        token_params=_check_params_map(reader, "token_params") or {},
        refresh_params=_check_params_map(reader, "refresh_params"),
        token_body=reader.choice("token_body", _BODIES) or "form",
        refresh_endpoint=urls.get("refresh_endpoint"),
        token_path=reader.word("token_path"),
        secondary_token_path=reader.word("secondary_token_path"),
        success_field=reader.word("success_field"),
        dead_grant_errors=reader.words("dead_grant_errors", spaces=True) or (),
        error_fields=reader.words("error_fields") or ("error",),
        expiry=expiry,
        introspection_endpoint=urls.get("introspection_endpoint"),
        identity_endpoint=urls.get("identity_endpoint"),
        revocation_request=revocation,
        client_credentials=reader.boolean("client_credentials") is True,
        independent_grants=reader.boolean("independent_grants") is True,
        access_token_lifetime=reader.positive_int("access_token_lifetime"),
        refresh_token_idle_expiry_days=reader.positive_int("refresh_token_idle_expiry_days"),
        client_secret_kind=reader.choice("client_secret_kind", _SECRET_KINDS),
        api_base_url=urls.get("api_base_url"),
        api_hosts=api_hosts or (),
        api_headers=api_headers or {},
        rate_limit_headers=rate_limit_headers or (),
        rate_limit_reset=rate_limit_reset,
        docs_url=urls.get("docs_url"),
        notes=reader.text("notes"),
    )


_NAME = re.compile(r"^[a-z][a-z0-9-]{0,49}$")


def check_provider_name(name: str, setting: str) -> str:
    """Return ``name`` if it is lowercase letters, digits and hyphens, at most 50 long.

    Raises:
        ConfigError: naming ``setting``.
    """
    if not _NAME.match(name):
        raise ConfigError(setting, "provider names are a-z, 0-9 and '-', at most 50 long")
    return name


def parse_catalog(text: str, *, source: str = "providers.toml") -> dict[str, ProviderSpec]:
    """Parse and check a catalog document (``schema_version = 1``).

    Raises:
        ConfigError: ``.setting`` is ``<source>: providers.<name>.<key>`` (or the top-level
            key) for the first problem found.
    """
    tables = catalog_tables(text, source)
    specs: dict[str, ProviderSpec] = {}
    for name, table in tables.items():
        where = f"{source}: providers.{name}"
        check_provider_name(name, where)
        if not isinstance(table, dict):
            raise ConfigError(where, "must be a table")
        specs[name] = parse_spec(name, TableReader(table, where), catalog=True)
    return specs


@functools.cache
def _catalog() -> Mapping[str, ProviderSpec]:
    text = resources.files("oauthvault.providers").joinpath("providers.toml").read_text("utf-8")
    return MappingProxyType(parse_catalog(text))


def load_catalog() -> dict[str, ProviderSpec]:
    """Every provider of the packaged catalog, by name (parsed once, then a fresh dict).

    Raises:
        ConfigError: the packaged catalog is broken, naming the provider and key.
    """
    return dict(_catalog())
