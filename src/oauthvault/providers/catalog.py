"""The provider catalog: endpoints and habits of the OAuth providers oauthvault knows.

The data lives in ``providers.toml`` next to this module (its header comment documents the
schema); :func:`load_catalog` reads and checks it once. A :class:`ProviderSpec` is one
entry. Entries whose URLs hold ``{param}`` are templates, filled per connection from its
connection parameters (:mod:`oauthvault.providers.params`) by
:meth:`ProviderSpec.with_placeholders`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

from oauthvault.errors import ConfigError
from oauthvault.providers.params import URL_SAFE_VALUE, ConnectionParam, parse_params
from oauthvault.providers.tables import TableReader

__all__ = [
    "CATALOG_KEYS",
    "CATALOG_REQUIRED",
    "CUSTOM_KEYS",
    "ENDPOINT_KEYS",
    "PLACEHOLDERS",
    "RESERVED_PARAMS",
    "ClientSecretKind",
    "ProviderSpec",
    "RefreshTokens",
    "RevocationMethod",
    "RevocationRequest",
    "ScopeSeparator",
    "TokenEndpointAuthMethod",
    "check_provider_name",
    "fill_placeholders",
    "load_catalog",
    "parse_catalog",
    "parse_spec",
]

RefreshTokens = Literal["none", "static", "rotating"]
RevocationMethod = Literal["rfc7009", "custom"]
TokenBody = Literal["form", "json"]
ExpirySource = Literal["answer", "introspection"]
ScopeSeparator = Literal[" ", ","]
TokenEndpointAuthMethod = Literal[
    "client_secret_post", "client_secret_basic", "private_key_jwt", "client_secret_jwt"
]
ClientSecretKind = Literal["apple_es256_jwt"]

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

#: Placeholder names every URL may use: ``{client_id}``, the app's own id.
PLACEHOLDERS = ("client_id",)
#: The endpoint keys of an entry; a provider's config table may override each of them.
ENDPOINT_KEYS = (
    "authorization_endpoint",
    "token_endpoint",
    "refresh_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "identity_endpoint",
    "introspection_endpoint",
    "issuer",
)
_URL_FIELDS = ENDPOINT_KEYS
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
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
    error_fields expiry introspection_endpoint identity_endpoint client_credentials""".split()
)
#: Spec keys a ``[providers.<name>]`` table of a provider outside the catalog may set.
CUSTOM_KEYS = frozenset(
    """display_name authorization_endpoint token_endpoint revocation_endpoint userinfo_endpoint
    issuer scope_separator token_endpoint_auth_method pkce refresh_tokens access_token_lifetime
    refresh_token_idle_expiry_days""".split()
)


@dataclass(frozen=True, slots=True)
class RevocationRequest:
    """How a provider without RFC 7009 revokes (``revocation_request`` in the catalog).

    ``client_auth``: ``basic`` (HTTP Basic client id and secret), ``post`` (both in the
    body), ``client_id`` (only the id in the body) or ``none``; ``bearer``: the token goes
    in ``Authorization: Bearer`` instead of the body; ``body``: ``form``, ``json``,
    ``query`` (URL query) or ``none``; ``token_param``: the token's field name; ``token``:
    ``refresh_or_access`` (the refresh token when there is one) or ``access``;
    ``success_field``: a field of a JSON answer that must be ``true`` (Slack ``ok``).
    """

    http_method: str = "POST"
    client_auth: str = "none"
    bearer: bool = False
    body: str = "form"
    token_param: str = "token"  # noqa: S105 - a field name
    token: str = "refresh_or_access"  # noqa: S105 - which token, not a token
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    success_field: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What oauthvault needs to know about one provider; see ``providers.toml`` for fields.

    ``default_scopes`` and ``placeholders`` are tuples and ``extra_authorize_params`` is a
    read-only mapping, whatever was passed in. Optional fields are ``None`` when unknown.
    """

    name: str
    display_name: str
    authorization_endpoint: str
    token_endpoint: str
    default_scopes: tuple[str, ...] = ()
    scope_separator: ScopeSeparator = " "
    extra_authorize_params: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    # S105: a method name, not a password.
    token_endpoint_auth_method: TokenEndpointAuthMethod = "client_secret_basic"  # noqa: S105
    pkce: bool = True
    refresh_tokens: RefreshTokens = "static"
    revocation_endpoint: str | None = None
    revocation_method: RevocationMethod | None = None
    revocation_note: str | None = field(default=None, repr=False)
    userinfo_endpoint: str | None = None
    issuer: str | None = None
    connection_params: tuple[ConnectionParam, ...] = ()
    token_params: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    refresh_params: Mapping[str, str] | None = field(default=None, hash=False)
    token_body: TokenBody = "form"  # noqa: S105 - a body format
    refresh_endpoint: str | None = None
    token_path: str | None = None
    secondary_token_path: str | None = None
    success_field: str | None = None
    dead_grant_errors: tuple[str, ...] = ()
    error_fields: tuple[str, ...] = ("error",)
    expiry: ExpirySource = "answer"
    introspection_endpoint: str | None = None
    identity_endpoint: str | None = None
    revocation_request: RevocationRequest | None = None
    client_credentials: bool = False
    access_token_lifetime: int | None = None
    refresh_token_idle_expiry_days: int | None = None
    client_secret_kind: ClientSecretKind | None = None
    docs_url: str | None = None
    notes: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Frozen: normalize through object.__setattr__ so callers may pass lists and dicts.
        object.__setattr__(self, "default_scopes", tuple(self.default_scopes))
        object.__setattr__(self, "connection_params", tuple(self.connection_params))
        object.__setattr__(self, "dead_grant_errors", tuple(self.dead_grant_errors))
        object.__setattr__(self, "error_fields", tuple(self.error_fields))
        params = MappingProxyType(dict(self.extra_authorize_params))
        object.__setattr__(self, "extra_authorize_params", params)
        object.__setattr__(self, "token_params", MappingProxyType(dict(self.token_params)))
        if self.refresh_params is not None:
            refresh = MappingProxyType(dict(self.refresh_params))
            object.__setattr__(self, "refresh_params", refresh)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The connection parameters its URLs still wait for, in declaration order."""
        used = {
            name
            for key in _URL_FIELDS
            if (url := getattr(self, key))
            for name in _PLACEHOLDER.findall(url)
        }
        return tuple(p.name for p in self.connection_params if p.name in used)

    def param(self, name: str) -> ConnectionParam | None:
        """The declared connection parameter ``name``, if any."""
        return next((p for p in self.connection_params if p.name == name), None)

    def with_endpoints(self, endpoints: Mapping[str, str | None]) -> ProviderSpec:
        """A copy with some of its :data:`ENDPOINT_KEYS` replaced (a config override)."""
        unknown = sorted(set(endpoints) - set(_URL_FIELDS))
        if unknown:
            raise ConfigError(f"providers.{self.name}.{unknown[0]}", "is not an endpoint key")
        changes: dict[str, Any] = dict(endpoints)
        return dataclasses.replace(self, **changes)

    def with_placeholders(self, **values: str) -> ProviderSpec:
        """A copy with its ``{param}`` URL placeholders and ``{client_id}`` filled in.

        Every placeholder a URL uses must be given (``client_id`` is ignored when no URL
        uses it); each value must be a parameter the entry declares, match its pattern and
        be host-safe.

        Raises:
            ConfigError: ``.setting`` is ``providers.<name>.<param>`` for a missing,
                unknown or malformed value.
        """
        return fill_placeholders(self, values, where=f"providers.{self.name}")


def fill_placeholders(
    spec: ProviderSpec, values: Mapping[str, str], *, where: str, partial: bool = False
) -> ProviderSpec:
    """:meth:`ProviderSpec.with_placeholders`, reporting settings as ``<where>.<name>``.

    With ``partial``, placeholders without a value stay in the URLs (the app's fixed values
    are filled at load time, the rest per connection).

    Raises:
        ConfigError: a placeholder value is missing, unknown or malformed.
    """
    for key in sorted(values):
        if key != "client_id" and spec.param(key) is None:
            raise ConfigError(f"{where}.{key}", "is not a connection parameter of this provider")
    templates = {name: getattr(spec, name) for name in _URL_FIELDS}
    used = {m for url in templates.values() if url for m in _PLACEHOLDER.findall(url)}
    filled: dict[str, str] = {}
    for key in sorted(used):
        value = values.get(key)
        if value is None:
            if partial:
                continue
            raise ConfigError(f"{where}.{key}", "is required by this provider")
        param = spec.param(key)
        if key == "client_id":
            filled[key] = quote(value, safe="")
        elif (
            not URL_SAFE_VALUE.match(value)
            or ".." in value
            or (param is not None and not param.accepts(value))
        ):
            raise ConfigError(f"{where}.{key}", "is not a valid value for this parameter")
        else:
            filled[key] = value

    def fill(url: str | None) -> str | None:
        return _PLACEHOLDER.sub(lambda m: filled.get(m[1], m[0]), url) if url else url

    return spec.with_endpoints({key: fill(templates[key]) for key in _URL_FIELDS})


def _check_placeholders(
    reader: TableReader, params: tuple[ConnectionParam, ...], urls: dict[str, str]
) -> None:
    by_name = {param.name: param for param in params}
    for key, url in urls.items():
        for name in _PLACEHOLDER.findall(url):
            if name == "client_id":
                continue
            param = by_name.get(name)
            if param is None:
                raise ConfigError(reader.setting(key), f"uses {{{name}}}, not a connection param")
            if param.source not in ("link", "token"):
                raise ConfigError(reader.setting(key), f"uses {{{name}}}, not known in time")
            if param.pattern is None:
                setting = reader.setting(f"connection_params.{name}.pattern")
                raise ConfigError(setting, "is required for a parameter used in a URL")


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
        for key in (*_URL_FIELDS, "docs_url")
        if (url := reader.url(key, allow_loopback_http=not catalog)) is not None
    }
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
        refresh_tokens=reader.choice("refresh_tokens", _REFRESH) or "static",
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
        access_token_lifetime=reader.positive_int("access_token_lifetime"),
        refresh_token_idle_expiry_days=reader.positive_int("refresh_token_idle_expiry_days"),
        client_secret_kind=reader.choice("client_secret_kind", _SECRET_KINDS),
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
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise ConfigError(source, "is not valid TOML") from None
    for key in sorted(document):
        if key not in ("schema_version", "providers"):
            raise ConfigError(f"{source}: {key}", "is not a known key")
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version != 1:
        raise ConfigError(f"{source}: schema_version", "must be 1")
    tables = document.get("providers")
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: providers", "must be a table of providers")
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
