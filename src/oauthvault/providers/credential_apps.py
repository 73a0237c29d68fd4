"""An app's own settings for credential-catalog providers: the ``[credentials.<name>]``
tables of the configuration file (``OAUTHVAULT_CONFIG``)::

    [credentials.github-app]            # the GitHub App installation tokens are minted for
    app_id = "123456"
    app_slug = "acme-sync"
    private_key_file = "/run/secrets/github-app.pem"

    [credentials.google-service-account]  # the app's own service account (optional)
    service_account_file = "/run/secrets/sa.json"
    scopes = ["https://www.googleapis.com/auth/drive.readonly"]

    [credentials.openai]                # any entry: its API through a corporate gateway
    api_base_url = "https://llm-gateway.internal.example.com/openai"

``api_base_url`` replaces the catalog's (https, or http on a loopback host: a test double).
Secrets may come from ``OAUTHVAULT_CREDENTIALS_<NAME>_<KEY>`` instead (``NAME``
upper-cased, ``-`` as ``_``; keys ``PRIVATE_KEY`` and ``SERVICE_ACCOUNT_JSON``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from oauthvault.errors import ConfigError
from oauthvault.providers.credentials import CredentialSpec, load_credential_catalog
from oauthvault.providers.minting import parse_github_app, parse_service_account_app
from oauthvault.providers.tables import TableReader, check_url

__all__ = ["CredentialApp", "credential_apps_from"]

ENV_PREFIX = "OAUTHVAULT_CREDENTIALS_"
_SECRET_KEYS = ("private_key", "service_account_json", "client_secret")
# The GitHub App's own OAuth client, used only to check who installed it.
_GITHUB_USER_KEYS = frozenset({"client_id", "client_secret", "oauth_url"})
# Keys per kind of entry, besides api_base_url (which every entry may set).
_APP_KEYS: Mapping[str, frozenset[str]] = {
    "github_app": frozenset(
        {"app_id", "app_slug", "private_key", "private_key_file", "install_url"}
    )
    | _GITHUB_USER_KEYS,
    "google_service_account": frozenset(
        {"service_account_file", "service_account_json", "scopes", "token_uri"}
    ),
}
_TWO_STEP_KEYS = frozenset({"token_url"})


@dataclass(frozen=True, slots=True)
class CredentialApp:
    """One ``[credentials.<name>]`` table, checked: the API base URL it replaces and the
    app's own values (an app id, a private key: ``settings``, never shown)."""

    name: str
    api_base_url: str | None = None
    settings: Mapping[str, object] = field(default_factory=dict, repr=False)

    def check(self, spec: CredentialSpec, where: str) -> None:
        """Parse the app's settings as its kind needs them (the minting code parses them
        again when it mints).

        Raises:
            ConfigError: naming the key at fault (never a key's value).
        """
        if spec.app == "github_app":
            parse_github_app(self.github_table(spec), where)
            origin = self.settings.get("oauth_url")
            if origin is not None:
                check_url(f"{where}.oauth_url", str(origin), allow_loopback_http=True)
            if ("client_id" in self.settings) != ("client_secret" in self.settings):
                raise ConfigError(f"{where}.client_secret", "goes with client_id")
        elif spec.app == "google_service_account":
            parse_service_account_app(self.settings, where)
        elif spec.auth == "two_step" and "token_url" in self.settings:
            check_url(
                f"{where}.token_url", str(self.settings["token_url"]), allow_loopback_http=True
            )

    def github_table(self, spec: CredentialSpec) -> dict[str, object]:
        """The GitHub App's settings, its API at the entry's (or this app's) base URL."""
        table = {k: v for k, v in self.settings.items() if k not in _GITHUB_USER_KEYS}
        return {**table, "api_base_url": self.applied_to(spec).api_base_url}

    def github_user_client(self) -> tuple[str, str, str] | None:
        """The GitHub App's OAuth client (client id, secret, and GitHub's web origin) that
        checks who installed it, when configured."""
        client_id = self.settings.get("client_id")
        secret = self.settings.get("client_secret")
        origin = self.settings.get("oauth_url", "https://github.com")
        if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id:
            return None
        return client_id, secret, str(origin).rstrip("/")

    def applied_to(self, spec: CredentialSpec) -> CredentialSpec:
        """``spec`` with this app's base URL."""
        if self.api_base_url is None:
            return spec
        return dataclasses.replace(spec, api_base_url=self.api_base_url)


def credential_apps_from(
    tables: object, environ: Mapping[str, str] | None = None, *, source: str = "credentials"
) -> dict[str, CredentialApp]:
    """The apps of a ``[credentials]`` table (``{"github-app": {"app_id": "…"}}``), with
    secrets from ``environ``; each name must be a credential catalog entry.

    Raises:
        ConfigError: naming ``<source>: credentials.<name>.<key>`` or the variable.
    """
    environ = {} if environ is None else environ
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: credentials", "must be a table of [credentials.<name>]")
    catalog = load_credential_catalog()
    apps: dict[str, CredentialApp] = {}
    for name, table in tables.items():
        where = f"{source}: credentials.{name}"
        spec = catalog.get(name)
        if spec is None:
            raise ConfigError(where, "is not an entry of the credential catalog")
        if not isinstance(table, dict):
            raise ConfigError(where, "must be a table")
        apps[name] = _parse_app(spec, TableReader(table, where), environ)
    return apps


def _parse_app(
    spec: CredentialSpec, reader: TableReader, environ: Mapping[str, str]
) -> CredentialApp:
    allowed = {"api_base_url"} | _APP_KEYS.get(spec.app or "", frozenset())
    if spec.auth == "two_step":
        allowed |= _TWO_STEP_KEYS
    reader.check_keys(allowed)
    base = reader.text("api_base_url")
    if base is not None:
        base = check_url(reader.setting("api_base_url"), base, allow_loopback_http=True)
        if base.endswith("/"):
            raise ConfigError(reader.setting("api_base_url"), "must not end with /")
    settings: dict[str, object] = {k: v for k, v in reader.table.items() if k != "api_base_url"}
    for key in _SECRET_KEYS:
        variable = f"{ENV_PREFIX}{spec.name.upper().replace('-', '_')}_{key.upper()}"
        if environ.get(variable):
            settings.pop(f"{key.removesuffix('_json')}_file", None)
            settings[key] = environ[variable]
    app = CredentialApp(spec.name, base, MappingProxyType(settings))
    app.check(spec, reader.where)  # a bad key or key file fails at startup, not at a mint
    return app
