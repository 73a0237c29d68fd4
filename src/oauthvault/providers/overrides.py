"""What a ``[providers.<name>]`` table changes on top of the spec it starts from.

A catalog provider and one found by discovery take the same overrides: ``display_name``,
any endpoint of :data:`~oauthvault.providers.spec.ENDPOINT_KEYS` (a corporate proxy, a test
double, an endpoint the provider's metadata leaves out), the API's ``api_base_url`` and
``api_hosts`` (which replaces the entry's list), its ``api_headers``,
``rate_limit_headers`` and ``rate_limit_reset`` (each replacing the entry's; a
``rate_limit_reset`` names one of the table's own ``rate_limit_headers``),
``revocation_method``, and what
the operator knows of the server's behaviour that no metadata publishes:
``refresh_tokens`` (``static`` only when the server documents it; unknown is rotating) and
``independent_grants`` (each authorization is a grant of its own, so a replaced one may be
revoked). The table
is read once, at load time (:func:`read_overrides`); :meth:`SpecOverrides.apply` is pure, so
a discovered spec gets them whenever discovery runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from oauthvault.errors import ConfigError
from oauthvault.providers.rate_limits import (
    RateLimitReset,
    read_api_headers,
    read_rate_limit_headers,
    read_rate_limit_reset,
)
from oauthvault.providers.spec import (
    API_KEYS,
    ENDPOINT_KEYS,
    ProviderSpec,
    RefreshTokens,
    RevocationMethod,
    check_api_base_url,
    param_of,
    placeholders_in,
    read_api_hosts,
)
from oauthvault.providers.tables import TableReader

__all__ = ["OVERRIDE_KEYS", "SpecOverrides", "read_overrides"]

#: The keys of a provider table that override its spec.
OVERRIDE_KEYS = frozenset(
    {
        "display_name",
        "revocation_method",
        "refresh_tokens",
        "independent_grants",
        *ENDPOINT_KEYS,
        *API_KEYS,
    }
)
_REFRESH: tuple[RefreshTokens, ...] = ("none", "static", "rotating")
# A custom revocation needs a catalog entry's revocation_request: a table can only pick RFC 7009.
_METHODS: tuple[RevocationMethod, ...] = ("rfc7009",)


@dataclass(frozen=True, slots=True)
class SpecOverrides:
    """The overrides of one provider table; empty when it sets none."""

    display_name: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    revocation_method: RevocationMethod | None = None
    refresh_tokens: RefreshTokens | None = None
    independent_grants: bool | None = None
    api_base_url: str | None = None
    api_hosts: tuple[str, ...] | None = None
    api_headers: Mapping[str, str] | None = None
    rate_limit_headers: tuple[str, ...] | None = None
    rate_limit_reset: RateLimitReset | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", MappingProxyType(dict(self.endpoints)))
        if self.api_hosts is not None:
            object.__setattr__(self, "api_hosts", tuple(self.api_hosts))
        if self.api_headers is not None:
            object.__setattr__(self, "api_headers", MappingProxyType(dict(self.api_headers)))

    def apply(self, spec: ProviderSpec) -> ProviderSpec:
        """``spec`` with these overrides (pure). A ``revocation_endpoint`` given for a spec
        that has none is revoked at by RFC 7009; ``revocation_method = "rfc7009"`` also
        replaces a catalog entry's custom revocation."""
        changes: dict[str, Any] = dict(self.endpoints)
        if self.display_name is not None:
            changes["display_name"] = self.display_name
        if self.refresh_tokens is not None:
            changes["refresh_tokens"] = self.refresh_tokens
        if self.independent_grants is not None:
            changes["independent_grants"] = self.independent_grants
        if self.api_base_url is not None:
            changes["api_base_url"] = self.api_base_url
        if self.api_hosts is not None:
            changes["api_hosts"] = self.api_hosts
        if self.api_headers is not None:
            changes["api_headers"] = self.api_headers
        if self.rate_limit_headers is not None:
            changes["rate_limit_headers"] = self.rate_limit_headers
            changes["rate_limit_reset"] = self.rate_limit_reset
        if "revocation_endpoint" in self.endpoints:
            method = self.revocation_method or spec.revocation_method or "rfc7009"
            changes["revocation_method"] = method
            if method == "rfc7009":
                changes |= {"revocation_request": None, "revocation_note": None}
        return dataclasses.replace(spec, **changes) if changes else spec


def read_overrides(
    reader: TableReader,
    *,
    placeholders: Collection[str],
    endpoints: Collection[str],
    api_placeholders: Collection[str] = (),
    has_api_base_url: bool = False,
) -> SpecOverrides:
    """The overrides in ``reader``'s table, of the endpoint keys in ``endpoints`` and of the
    API (:data:`~oauthvault.providers.spec.API_KEYS`).

    An endpoint may use only the ``{placeholders}`` named (``client_id`` and the provider's
    connection parameters known in time), ``api_base_url`` only the ``api_placeholders``
    (the parameters with a pattern); http is accepted on loopback hosts. ``api_hosts``
    needs an ``api_base_url``: the table's, or the spec's (``has_api_base_url``), and so do
    ``api_headers`` and ``rate_limit_headers``; ``rate_limit_reset`` names one of the
    table's ``rate_limit_headers``.

    Raises:
        ConfigError: naming the first bad key: a URL that is not https (or http on a
            loopback host) or uses an unknown placeholder, an ``api_base_url`` ending in
            ``/`` or with a query, a bad ``api_hosts`` item or header, a ``revocation_method`` other
            than ``rfc7009`` or without ``revocation_endpoint``, a bad ``display_name``.
    """
    urls: dict[str, str] = {}
    for key in ENDPOINT_KEYS:
        if key not in endpoints:
            continue
        url = reader.url(key, allow_loopback_http=True)
        if url is None:
            continue
        unknown = [name for name in placeholders_in(url) if param_of(name) not in placeholders]
        if unknown:
            raise ConfigError(reader.setting(key), f"uses {{{unknown[0]}}}, unknown here")
        urls[key] = url
    api_base_url = reader.url("api_base_url", allow_loopback_http=True)
    if api_base_url is not None:
        setting = reader.setting("api_base_url")
        check_api_base_url(setting, api_base_url)
        unknown = [
            name for name in placeholders_in(api_base_url) if param_of(name) not in api_placeholders
        ]
        if unknown:
            raise ConfigError(setting, f"uses {{{unknown[0]}}}, unknown here")
    api_hosts = read_api_hosts(reader)
    api_headers = read_api_headers(reader)
    rate_limit_headers = read_rate_limit_headers(reader)
    rate_limit_reset = read_rate_limit_reset(reader, rate_limit_headers)
    for key, value in (
        ("api_hosts", api_hosts),
        ("api_headers", api_headers),
        ("rate_limit_headers", rate_limit_headers),
    ):
        if value is not None and api_base_url is None and not has_api_base_url:
            raise ConfigError(reader.setting(key), "goes with api_base_url")
    method = reader.choice("revocation_method", _METHODS)
    if method is not None and "revocation_endpoint" not in urls:
        raise ConfigError(reader.setting("revocation_method"), "goes with revocation_endpoint")
    return SpecOverrides(
        reader.text("display_name"),
        urls,
        method,
        reader.choice("refresh_tokens", _REFRESH),
        reader.boolean("independent_grants"),
        api_base_url,
        api_hosts,
        api_headers,
        rate_limit_headers,
        rate_limit_reset,
    )
