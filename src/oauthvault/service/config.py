"""Service configuration: the ``[service]`` and ``[[api_keys]]`` tables of the file named by
``OAUTHVAULT_CONFIG`` (the same file that configures ``[providers.*]``), with
``OAUTHVAULT_PUBLIC_URL`` and ``OAUTHVAULT_WEBHOOK_SECRET`` on top. The environment itself
is read by :class:`oauthvault.Settings`; this module takes what it captured."""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from oauthvault.config import CONFIG_ENV, Settings
from oauthvault.errors import ConfigError
from oauthvault.oauth.state import DEFAULT_STATE_TTL
from oauthvault.providers.config import (
    ProviderConfig,
    load_provider_configs,
    read_config_document,
)
from oauthvault.providers.credential_apps import CredentialApp, credential_apps_from
from oauthvault.service.apikeys import ApiKey
from oauthvault.service.callback_budget import (
    DEFAULT_HELD_CALLBACKS_PER_ADDRESS,
    DEFAULT_HELD_CALLBACKS_TOTAL,
)
from oauthvault.service.links import DEFAULT_LINK_TTL
from oauthvault.service.pages import DEFAULT_BRANDING, Branding

__all__ = [
    "AdminConfig",
    "ServiceConfig",
    "load_service_config",
    "load_service_settings",
    "service_config_from",
]

PUBLIC_URL_ENV = "OAUTHVAULT_PUBLIC_URL"
WEBHOOK_SECRET_ENV = "OAUTHVAULT_WEBHOOK_SECRET"  # noqa: S105 - a variable name
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
#: The file's top-level tables, and the keys of its ``[service]`` table: anything else is a
#: typo, refused by name (``[providers.*]`` keys are checked by the providers' reader).
TABLES = frozenset({"service", "api_keys", "providers", "credentials", "branding", "admin"})
SERVICE_KEYS = frozenset(
    {
        "public_url",
        "return_urls",
        "webhook_url",
        "webhook_secret",
        "state_ttl",
        "link_ttl",
        "held_callbacks_per_address",
        "held_callbacks_total",
        "metrics_port",
        "metrics_host",
        "metrics_refresh",
        "trusted_proxies",
    }
)
#: How old the connection counts of ``/metrics`` may be (a full-table count): seconds.
DEFAULT_METRICS_REFRESH = 30
METRICS_REFRESH_RANGE = (0, 3600)
#: How long a connect flow may take (from the redirect to the provider until the callback),
#: and how long a connect link stays usable: seconds, with these bounds.
STATE_TTL_RANGE = (30, 86_400)
LINK_TTL_RANGE = (30, 7 * 86_400)
API_KEY_KEYS = frozenset({"name", "sha256", "workspaces", "app_client_credentials"})
BRANDING_KEYS = frozenset({"product_name", "logo_url", "accent_color"})
ADMIN_KEYS = frozenset({"credential_sha256", "session_ttl"})
#: How long an admin console session lasts after signing in.
DEFAULT_ADMIN_SESSION_TTL = 8 * 3600
ADMIN_SESSION_TTL_RANGE = (300, 7 * 86_400)
#: How many callbacks posted by providers (form_post) are kept at once, per client address
#: and in total (per process).
HELD_CALLBACKS_PER_ADDRESS_RANGE = (1, 10_000)
HELD_CALLBACKS_TOTAL_RANGE = (1, 1_000_000)


@dataclass(frozen=True)
class AdminConfig:
    """The admin console: the SHA-256 of its credential (never the credential) and how long
    a session lasts."""

    credential_sha256: str
    session_ttl: int = DEFAULT_ADMIN_SESSION_TTL


@dataclass(frozen=True)
class ServiceConfig:
    public_url: str = DEFAULT_PUBLIC_URL
    return_urls: tuple[str, ...] = ()
    api_keys: tuple[ApiKey, ...] = ()
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    credential_apps: Mapping[str, CredentialApp] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    state_ttl: int = DEFAULT_STATE_TTL
    link_ttl: int = DEFAULT_LINK_TTL
    held_callbacks_per_address: int = DEFAULT_HELD_CALLBACKS_PER_ADDRESS
    held_callbacks_total: int = DEFAULT_HELD_CALLBACKS_TOTAL
    branding: Branding = DEFAULT_BRANDING
    admin: AdminConfig | None = None
    #: ``/metrics`` on this port (and ``metrics_host``) instead of the service's port.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_refresh: int = DEFAULT_METRICS_REFRESH
    #: The proxies (addresses or networks) whose ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` are believed; none by default, so the connecting peer's address
    #: is the client's (the sign-in throttle and the audit trail key on it).
    trusted_proxies: tuple[str, ...] = ()


def _port(value: object, setting: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(setting, "must be a port number from 1 to 65535")
    return value


def _seconds(value: object, setting: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(setting, f"must be a whole number of seconds from {low} to {high}")
    return value


def _count(value: object, setting: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(setting, f"must be a whole number from {low} to {high}")
    return value


def _strings(value: object, setting: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(setting, "must be a list of strings")
    return tuple(value)


def _table(
    document: Mapping[str, object], name: str, keys: frozenset[str], where: str
) -> dict[str, object] | None:
    table = document.get(name)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {name}", "must be a table")
    for unknown in sorted(set(table) - keys):
        raise ConfigError(f"{where}: {name}.{unknown}", "is not a known key")
    return table


def _sha256(value: object, setting: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or set(value) - set("0123456789abcdef"):
        raise ConfigError(setting, "must be 64 lowercase hex characters")
    return value


def _branding(document: Mapping[str, object], where: str) -> Branding:
    table = _table(document, "branding", BRANDING_KEYS, where)
    if table is None:
        return DEFAULT_BRANDING
    values = {}
    for key in sorted(table):
        value = table[key]
        if not isinstance(value, str):
            raise ConfigError(f"{where}: branding.{key}", "must be a string")
        values[key] = value
    try:
        return Branding(**values)
    except ValueError as error:
        raise ConfigError(f"{where}: branding", str(error)) from None


def _admin(document: Mapping[str, object], where: str) -> AdminConfig | None:
    table = _table(document, "admin", ADMIN_KEYS, where)
    if table is None:
        return None
    return AdminConfig(
        credential_sha256=_sha256(
            table.get("credential_sha256"), f"{where}: admin.credential_sha256"
        ),
        session_ttl=_seconds(
            table.get("session_ttl", DEFAULT_ADMIN_SESSION_TTL),
            f"{where}: admin.session_ttl",
            ADMIN_SESSION_TTL_RANGE,
        ),
    )


def _api_keys(entries: object, where: str) -> tuple[ApiKey, ...]:
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: api_keys", "must be an array of [[api_keys]] tables")
    keys = []
    for index, entry in enumerate(entries):
        setting = f"{where}: api_keys[{index}]"
        if not isinstance(entry, dict) or set(entry) - API_KEY_KEYS:
            raise ConfigError(
                setting, "takes name, sha256 and optionally workspaces, app_client_credentials"
            )
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{setting}.name", "must be a non-empty string")
        digest = _sha256(digest, f"{setting}.sha256")
        workspaces = entry.get("workspaces")
        allowed = (
            None if workspaces is None else frozenset(_strings(workspaces, f"{setting}.workspaces"))
        )
        app_client = entry.get("app_client_credentials", False)
        if not isinstance(app_client, bool):
            raise ConfigError(f"{setting}.app_client_credentials", "must be true or false")
        keys.append(ApiKey(name, digest, allowed, app_client))
    return tuple(keys)


def service_config_from(
    settings: Settings, default_public_url: str = DEFAULT_PUBLIC_URL
) -> ServiceConfig:
    """The service configuration that ``settings`` names (its file and variables);
    ``default_public_url`` applies when neither sets one (``serve --port`` moves it).

    Raises:
        ConfigError: naming the file and key at fault, never a secret value.
    """
    return load_service_config(
        settings.config_file, settings.config_variables, default_public_url=default_public_url
    )


def load_service_config(
    path: Path | None,
    environ: Mapping[str, str],
    *,
    default_public_url: str = DEFAULT_PUBLIC_URL,
) -> ServiceConfig:
    """Read the configuration file at ``path`` (``None``: defaults, no providers), with the
    ``OAUTHVAULT_*`` variables in ``environ`` on top.

    Raises:
        ConfigError: naming the file and key at fault (an unknown table or ``[service]``
            key included), never a secret value.
    """
    service = load_service_settings(path, environ, default_public_url=default_public_url)
    apps: dict[str, CredentialApp] = {}
    if path is not None:
        tables = read_config_document(path).get("credentials", {})
        apps = credential_apps_from(tables, environ, source=str(path))
    return replace(service, providers=load_provider_configs(path, environ), credential_apps=apps)


def load_service_settings(
    path: Path | None,
    environ: Mapping[str, str],
    *,
    default_public_url: str = DEFAULT_PUBLIC_URL,
) -> ServiceConfig:
    """:func:`load_service_config` without the ``[providers.*]`` apps (``providers`` is
    empty): the file's tables, ``[service]`` and ``[[api_keys]]``.

    Raises:
        ConfigError: as :func:`load_service_config`, for those tables.
    """
    document: dict[str, object] = {}
    where = str(path)
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(CONFIG_ENV, f"cannot read {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError:
            raise ConfigError(CONFIG_ENV, f"{path} is not valid TOML") from None
    for table in sorted(set(document) - TABLES):
        raise ConfigError(
            f"{where}: {table}",
            "is not a known table (service, api_keys, providers, credentials, branding, admin)",
        )
    service = document.get("service", {})
    if not isinstance(service, dict):
        raise ConfigError(f"{where}: service", "must be a table")
    for unknown in sorted(set(service) - SERVICE_KEYS):
        raise ConfigError(f"{where}: service.{unknown}", "is not a known key")
    public_url = environ.get(PUBLIC_URL_ENV) or service.get("public_url", default_public_url)
    if not isinstance(public_url, str) or not public_url.startswith(("http://", "https://")):
        raise ConfigError(PUBLIC_URL_ENV, "must be an absolute http(s) URL")
    return_urls = _strings(service.get("return_urls", []), f"{where}: service.return_urls")
    webhook_url = service.get("webhook_url")
    webhook_secret = environ.get(WEBHOOK_SECRET_ENV) or service.get("webhook_secret")
    if webhook_url is not None:
        if not isinstance(webhook_url, str) or not webhook_url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: service.webhook_url", "must be an absolute http(s) URL")
        if not isinstance(webhook_secret, str) or len(webhook_secret) < 16:
            raise ConfigError(
                WEBHOOK_SECRET_ENV, "must be set (16+ characters) when webhook_url is set"
            )
    return ServiceConfig(
        public_url=public_url,
        return_urls=return_urls,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret if webhook_url else None,
        api_keys=_api_keys(document.get("api_keys", []), where),
        state_ttl=_seconds(
            service.get("state_ttl", DEFAULT_STATE_TTL),
            f"{where}: service.state_ttl",
            STATE_TTL_RANGE,
        ),
        link_ttl=_seconds(
            service.get("link_ttl", DEFAULT_LINK_TTL), f"{where}: service.link_ttl", LINK_TTL_RANGE
        ),
        held_callbacks_per_address=_count(
            service.get("held_callbacks_per_address", DEFAULT_HELD_CALLBACKS_PER_ADDRESS),
            f"{where}: service.held_callbacks_per_address",
            HELD_CALLBACKS_PER_ADDRESS_RANGE,
        ),
        held_callbacks_total=_count(
            service.get("held_callbacks_total", DEFAULT_HELD_CALLBACKS_TOTAL),
            f"{where}: service.held_callbacks_total",
            HELD_CALLBACKS_TOTAL_RANGE,
        ),
        branding=_branding(document, where),
        admin=_admin(document, where),
        metrics_port=_port(service.get("metrics_port"), f"{where}: service.metrics_port"),
        metrics_host=_host(service.get("metrics_host", "127.0.0.1"), where),
        metrics_refresh=_seconds(
            service.get("metrics_refresh", DEFAULT_METRICS_REFRESH),
            f"{where}: service.metrics_refresh",
            METRICS_REFRESH_RANGE,
        ),
        trusted_proxies=_networks(
            service.get("trusted_proxies", []), f"{where}: service.trusted_proxies"
        ),
    )


def _networks(value: object, setting: str) -> tuple[str, ...]:
    """Proxy addresses or networks (``10.0.0.5``, ``10.0.0.0/24``, ``::1``), normalised."""
    networks = []
    for item in _strings(value, setting):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(setting, "must list IP addresses or networks") from None
        networks.append(str(network.network_address if network.num_addresses == 1 else network))
    return tuple(networks)


def _host(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: service.metrics_host", "must be a host name or address")
    return value
