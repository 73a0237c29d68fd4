"""The provider catalog: endpoints and habits of the OAuth providers oauthvault knows.

The data lives in ``providers.toml`` next to this module (its header comment documents the
schema); :func:`load_catalog` reads and checks it once. A :class:`ProviderSpec` is one
entry. Entries whose URLs hold ``{tenant}``, ``{subdomain}`` or ``{shop}`` are templates:
:meth:`ProviderSpec.with_placeholders` fills them in.
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
from typing import Literal
from urllib.parse import quote

from oauthvault.errors import ConfigError
from oauthvault.providers.tables import TableReader

__all__ = [
    "CUSTOM_KEYS",
    "PLACEHOLDERS",
    "RESERVED_PARAMS",
    "ClientSecretKind",
    "ProviderSpec",
    "RefreshTokens",
    "RevocationMethod",
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

#: Placeholder names a catalog URL may use (besides ``{client_id}``, the app's own id).
PLACEHOLDERS = ("shop", "subdomain", "tenant")
_URL_FIELDS = (
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "issuer",
)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# A host label run or a tenant id/domain: it can never leave the host or path it fills.
_PLACEHOLDER_VALUE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# Parameters the authorization request sets itself; overriding them would break the flow.
RESERVED_PARAMS = frozenset(
    "client_id code_challenge code_challenge_method redirect_uri response_type scope state".split()
)

_CATALOG_REQUIRED = frozenset(
    """display_name authorization_endpoint token_endpoint default_scopes scope_separator
    token_endpoint_auth_method pkce refresh_tokens docs_url notes""".split()
)
_CATALOG_KEYS = _CATALOG_REQUIRED | set(
    """revocation_endpoint revocation_method revocation_note userinfo_endpoint issuer
    placeholders extra_authorize_params client_secret_kind access_token_lifetime
    refresh_token_idle_expiry_days""".split()
)
#: Spec keys a ``[providers.<name>]`` table of a provider outside the catalog may set.
CUSTOM_KEYS = frozenset(
    """display_name authorization_endpoint token_endpoint revocation_endpoint userinfo_endpoint
    issuer scope_separator token_endpoint_auth_method pkce refresh_tokens access_token_lifetime
    refresh_token_idle_expiry_days""".split()
)


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
    placeholders: tuple[str, ...] = ()
    access_token_lifetime: int | None = None
    refresh_token_idle_expiry_days: int | None = None
    client_secret_kind: ClientSecretKind | None = None
    docs_url: str | None = None
    notes: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Frozen: normalize through object.__setattr__ so callers may pass lists and dicts.
        object.__setattr__(self, "default_scopes", tuple(self.default_scopes))
        object.__setattr__(self, "placeholders", tuple(self.placeholders))
        params = MappingProxyType(dict(self.extra_authorize_params))
        object.__setattr__(self, "extra_authorize_params", params)

    def with_placeholders(self, **values: str) -> ProviderSpec:
        """A copy with ``{tenant}``/``{subdomain}``/``{shop}`` and ``{client_id}`` filled in.

        Every placeholder the spec lists must be given; ``client_id`` is needed only when a
        URL uses it and is ignored otherwise. The copy lists no placeholders.

        Raises:
            ConfigError: ``.setting`` is ``providers.<name>.<placeholder>`` for a missing,
                unknown or malformed placeholder value.
        """
        return fill_placeholders(self, values, where=f"providers.{self.name}")


def fill_placeholders(spec: ProviderSpec, values: Mapping[str, str], *, where: str) -> ProviderSpec:
    """:meth:`ProviderSpec.with_placeholders`, reporting settings as ``<where>.<name>``.

    Values may only hold letters, digits, dots and hyphens (``client_id`` is
    percent-encoded instead), so a value can never move a URL to another host.

    Raises:
        ConfigError: a placeholder value is missing, unknown or malformed.
    """
    for key in sorted(values):
        if key != "client_id" and key not in spec.placeholders:
            raise ConfigError(f"{where}.{key}", "is not a placeholder of this provider")
    templates = {name: getattr(spec, name) for name in _URL_FIELDS}
    used = {m for url in templates.values() if url for m in _PLACEHOLDER.findall(url)}
    filled: dict[str, str] = {}
    for key in sorted(used | set(spec.placeholders)):
        value = values.get(key)
        if value is None:
            raise ConfigError(f"{where}.{key}", "is required by this provider")
        if key == "client_id":
            filled[key] = quote(value, safe="")
        elif not _PLACEHOLDER_VALUE.match(value) or ".." in value:
            raise ConfigError(f"{where}.{key}", "must be letters, digits, dots and hyphens")
        else:
            filled[key] = value

    def fill(url: str | None) -> str | None:
        return _PLACEHOLDER.sub(lambda m: filled[m[1]], url) if url else url

    return dataclasses.replace(
        spec,
        placeholders=(),
        authorization_endpoint=fill(spec.authorization_endpoint) or "",
        token_endpoint=fill(spec.token_endpoint) or "",
        revocation_endpoint=fill(spec.revocation_endpoint),
        userinfo_endpoint=fill(spec.userinfo_endpoint),
        issuer=fill(spec.issuer),
    )


def _check_placeholders(reader: TableReader, listed: tuple[str, ...], urls: dict[str, str]) -> None:
    for name in listed:
        if name not in PLACEHOLDERS:
            allowed = ", ".join(PLACEHOLDERS)
            raise ConfigError(reader.setting("placeholders"), f"may only list {allowed}")
    if len(set(listed)) != len(listed):
        raise ConfigError(reader.setting("placeholders"), "must not repeat a name")
    used: set[str] = set()
    for key, url in urls.items():
        for name in _PLACEHOLDER.findall(url):
            if name == "client_id" and key == "revocation_endpoint":
                continue
            if name not in listed:
                raise ConfigError(reader.setting(key), f"uses {{{name}}}, not in placeholders")
            used.add(name)
    for name in listed:
        if name not in used:
            raise ConfigError(reader.setting("placeholders"), f"lists {name}, used by no URL")


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
        reader.check_keys(_CATALOG_KEYS, _CATALOG_REQUIRED)
    else:
        reader.check_keys(CUSTOM_KEYS, ("authorization_endpoint", "token_endpoint"))
    urls = {
        key: url
        for key in (*_URL_FIELDS, "docs_url")
        if (url := reader.url(key, allow_loopback_http=not catalog)) is not None
    }
    _check_placeholders(reader, reader.words("placeholders") or (), urls)
    separator = reader.choice("scope_separator", _SEPARATORS) or " "
    scopes = reader.words("default_scopes") or ()
    if separator == "," and any("," in scope for scope in scopes):
        raise ConfigError(reader.setting("default_scopes"), "a scope contains the separator")
    params = reader.string_map("extra_authorize_params") or {}
    for param in sorted(params):
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
    return ProviderSpec(
        name=name,
        display_name=reader.text("display_name") or name,
        authorization_endpoint=urls["authorization_endpoint"],
        token_endpoint=urls["token_endpoint"],
        default_scopes=scopes,
        scope_separator=separator,
        extra_authorize_params=params,
        token_endpoint_auth_method=reader.choice("token_endpoint_auth_method", methods)
        or "client_secret_basic",
        pkce=reader.boolean("pkce") is not False,
        refresh_tokens=reader.choice("refresh_tokens", _REFRESH) or "static",
        revocation_endpoint=urls.get("revocation_endpoint"),
        revocation_method=revocation_method,
        revocation_note=note,
        userinfo_endpoint=urls.get("userinfo_endpoint"),
        issuer=urls.get("issuer"),
        placeholders=reader.words("placeholders") or (),
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
