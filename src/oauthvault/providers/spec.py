"""What oauthvault knows about one provider: :class:`ProviderSpec` and the types of its
fields.

A spec comes from the packaged catalog (:mod:`oauthvault.providers.catalog` reads and
checks it), from a deployment's own provider table, or from OpenID Connect discovery. URLs
that hold ``{param}`` are templates, filled per connection from its connection parameters
(:mod:`oauthvault.providers.params`) by :meth:`ProviderSpec.with_placeholders`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from oauthvault.errors import ConfigError
from oauthvault.providers.params import URL_SAFE_VALUE, ConnectionParam, default_for
from oauthvault.providers.rate_limits import RateLimitReset
from oauthvault.providers.tables import TableReader

__all__ = [
    "API_KEYS",
    "ENDPOINT_KEYS",
    "PLACEHOLDERS",
    "URL_KEYS",
    "ClientSecretKind",
    "ExpirySource",
    "ProviderSpec",
    "RefreshTokens",
    "RevocationMethod",
    "RevocationRequest",
    "ScopeSeparator",
    "TokenBody",
    "TokenEndpointAuthMethod",
    "api_host_matches",
    "check_api_base_url",
    "fill_placeholders",
    "param_of",
    "placeholders_in",
    "read_api_hosts",
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
#: The keys of the provider's API: where an authenticated request for a connection may go,
#: the constant headers it carries, and the rate-limit headers of the answers.
API_KEYS = ("api_base_url", "api_hosts", "api_headers", "rate_limit_headers", "rate_limit_reset")
#: Every key holding a URL template (the endpoints, then the API's base URL).
URL_KEYS = (*ENDPOINT_KEYS, "api_base_url")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ORIGIN = "https://"
# An api_hosts item: a host name of two or more labels, or "*." and one (a single label).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_API_HOST = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.[a-z][a-z0-9-]{{0,61}}[a-z0-9]$")


def placeholders_in(url: str) -> list[str]:
    """The placeholder names ``url`` uses (``shop`` for ``https://{shop}/…``), in order; a
    host a parameter picks per value is ``<param>.<word>`` (``region.token``)."""
    return _PLACEHOLDER.findall(url)


def param_of(placeholder: str) -> str:
    """The connection parameter a placeholder stands for (``region`` for ``region.token``)."""
    return placeholder.split(".", 1)[0]


def check_api_base_url(setting: str, url: str) -> str:
    """``url`` if it can be an API base URL (already checked as a URL): no trailing ``/``,
    no query; a caller's request path is appended to it.

    Raises:
        ConfigError: naming ``setting``.
    """
    if url.endswith("/"):
        raise ConfigError(setting, "must not end with /")
    if "?" in url:
        raise ConfigError(setting, "must not have a query")
    return url


def read_api_hosts(reader: TableReader, key: str = "api_hosts") -> tuple[str, ...] | None:
    """The ``api_hosts`` list: distinct lower-case host names (two labels or more), each
    maybe ``*.`` and a name (one more label, never a bare ``*`` or ``*.<tld>``); ``None``
    when absent.

    Raises:
        ConfigError: naming ``<where>.api_hosts`` (and the item at fault).
    """
    hosts = reader.words(key)
    if hosts is None:
        return None
    for i, host in enumerate(hosts):
        if not _API_HOST.match(host) or len(host) > 253:
            raise ConfigError(
                reader.setting(f"{key}[{i}]"),
                "must be a lower-case host name, or *. and one (two labels or more)",
            )
    return hosts


def api_host_matches(pattern: str, host: str) -> bool:
    """True when ``host`` is ``pattern``, or ``pattern`` is ``*.<name>`` and ``host`` is one
    more label in front of ``<name>`` (``*.googleapis.com``: ``gmail.googleapis.com``, not
    ``a.b.googleapis.com`` nor ``googleapis.com``). Host names compare case-insensitively."""
    host = host.lower().rstrip(".")
    if not pattern.startswith("*."):
        return host == pattern
    label, _, rest = host.partition(".")
    return bool(label) and rest == pattern[2:]


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
    refresh_tokens: RefreshTokens = "rotating"
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
    #: Each authorization gets a grant of its own, and revoking a token ends only its own
    #: grant: tokens the connect flow discards, and the grant a reconnect replaces, are revoked.
    independent_grants: bool = False
    access_token_lifetime: int | None = None
    refresh_token_idle_expiry_days: int | None = None
    client_secret_kind: ClientSecretKind | None = None
    #: The provider's REST API base URL (a template like the endpoints; no trailing ``/``).
    api_base_url: str | None = None
    #: Other hosts of the provider's API: exact names, or ``*.`` and a name (one label).
    api_hosts: tuple[str, ...] = ()
    #: Constant headers of every API request (``Notion-Version``); a caller's header of the
    #: same name replaces one (:func:`~oauthvault.providers.rate_limits.outgoing_headers`).
    api_headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    #: The provider's documented rate-limit answer headers.
    rate_limit_headers: tuple[str, ...] = ()
    #: The documented header saying when a 429 may be tried again, and its format.
    rate_limit_reset: RateLimitReset | None = None
    docs_url: str | None = None
    notes: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Frozen: normalize through object.__setattr__ so callers may pass lists and dicts.
        object.__setattr__(self, "default_scopes", tuple(self.default_scopes))
        object.__setattr__(self, "connection_params", tuple(self.connection_params))
        object.__setattr__(self, "dead_grant_errors", tuple(self.dead_grant_errors))
        object.__setattr__(self, "error_fields", tuple(self.error_fields))
        object.__setattr__(self, "api_hosts", tuple(self.api_hosts))
        object.__setattr__(self, "api_headers", MappingProxyType(dict(self.api_headers)))
        object.__setattr__(self, "rate_limit_headers", tuple(self.rate_limit_headers))
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
            param_of(name)
            for key in ENDPOINT_KEYS
            if (url := getattr(self, key))
            for name in placeholders_in(url)
        }
        return tuple(p.name for p in self.connection_params if p.name in used)

    @property
    def api_placeholders(self) -> tuple[str, ...]:
        """The connection parameters ``api_base_url`` still waits for, in declaration order
        (any source: a token or identity value is known once the connection is made)."""
        used = {param_of(name) for name in placeholders_in(self.api_base_url or "")}
        return tuple(p.name for p in self.connection_params if p.name in used)

    def api_base_for(self, params: Mapping[str, str]) -> str | None:
        """``api_base_url`` filled with one connection's parameters (``None``: the provider
        has no API base URL), by the same rules as the endpoints (:func:`fill_placeholders`).

        Raises:
            ConfigError: ``providers.<name>.<param>`` for a value the URL needs that is
                missing or not valid for it.
        """
        if self.api_base_url is None:
            return None
        values = {key: params[key] for key in self.api_placeholders if key in params}
        where = f"providers.{self.name}"
        filled = fill_placeholders(
            self, values, where=where, context=params, keys=("api_base_url",)
        )
        return filled.api_base_url

    def allows_api_host(self, host: str, *, base_url: str | None) -> bool:
        """True when ``host`` is the host of ``base_url`` (the filled :meth:`api_base_for`)
        or matches one of :attr:`api_hosts` (:func:`api_host_matches`)."""
        base_host = urlsplit(base_url).hostname if base_url else None
        if base_host is not None and host.lower().rstrip(".") == base_host:
            return True
        return any(api_host_matches(pattern, host) for pattern in self.api_hosts)

    def param(self, name: str) -> ConnectionParam | None:
        """The declared connection parameter ``name``, if any."""
        return next((p for p in self.connection_params if p.name == name), None)

    def with_endpoints(self, endpoints: Mapping[str, str | None]) -> ProviderSpec:
        """A copy with some of its :data:`ENDPOINT_KEYS` replaced (a config override)."""
        unknown = sorted(set(endpoints) - set(ENDPOINT_KEYS))
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
    spec: ProviderSpec,
    values: Mapping[str, str],
    *,
    where: str,
    partial: bool = False,
    context: Mapping[str, str] | None = None,
    keys: Collection[str] = ENDPOINT_KEYS,
) -> ProviderSpec:
    """:meth:`ProviderSpec.with_placeholders`, reporting settings as ``<where>.<name>``.

    Only the URLs of ``keys`` are filled (default: the endpoints; :data:`URL_KEYS` adds
    ``api_base_url``, whose token and identity values come only once a connection exists).

    With ``partial``, placeholders without a value stay in the URLs (the app's fixed values
    are filled at load time, the rest per connection). Otherwise a callback parameter
    without a value (before the callback, or a connection whose callback did not send it)
    takes its default, filled with the link values of ``context`` and ``values``, and a link
    parameter without one (a connection made before it was declared) takes its default.

    Raises:
        ConfigError: a placeholder value is missing, unknown or malformed.
    """
    for key in sorted(values):
        if key != "client_id" and spec.param(key) is None:
            raise ConfigError(f"{where}.{key}", "is not a connection parameter of this provider")
    unknown = sorted(set(keys) - set(URL_KEYS))
    if unknown:
        raise ValueError(f"not a URL key: {unknown[0]}")
    templates = {name: getattr(spec, name) for name in keys}
    used = {m for url in templates.values() if url for m in placeholders_in(url)}
    filled: dict[str, str] = {}
    for placeholder in sorted(used):
        key = param_of(placeholder)
        value = values.get(key)
        param = spec.param(key)
        if value is None and not partial and param is not None and param.source == "callback":
            value = default_for(param, {**(context or {}), **values})
        elif value is None and not partial and param is not None and param.source == "link":
            value = param.default  # a connection made before the parameter was declared
        if value is None:
            if partial:
                continue
            raise ConfigError(f"{where}.{key}", "is required by this provider")
        if key == "client_id":
            filled[placeholder] = quote(value, safe="")
            continue
        if placeholder != key:
            # A host the parameter's value picks (Amazon's region: its token host).
            word = placeholder.removeprefix(f"{key}.")
            host = param.host(word, value) if param is not None else None
            if host is None or param is None or not param.accepts(value):
                raise ConfigError(f"{where}.{key}", "is not a valid value for this parameter")
            filled[placeholder] = host
            continue
        # A value the provider sent as an https origin (Zoho's accounts-server) fills the
        # URL with its host; a value given by the caller is always a bare host-safe word.
        word = value
        if param is not None and param.source != "link" and value.startswith(_ORIGIN):
            word = value.removeprefix(_ORIGIN)
        if (
            not URL_SAFE_VALUE.match(word)
            or ".." in word
            or (param is not None and not param.accepts(value))
        ):
            raise ConfigError(f"{where}.{key}", "is not a valid value for this parameter")
        filled[placeholder] = word

    def fill(url: str | None) -> str | None:
        return _PLACEHOLDER.sub(lambda m: filled.get(m[1], m[0]), url) if url else url

    changes: dict[str, Any] = {key: fill(url) for key, url in templates.items()}
    return dataclasses.replace(spec, **changes)
