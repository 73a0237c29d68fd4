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
from pathlib import Path
from types import MappingProxyType

from oauthvault.errors import ConfigError
from oauthvault.providers.credentials import CredentialSpec, load_credential_catalog
from oauthvault.providers.tables import TableReader, check_url

__all__ = ["CredentialApp", "credential_apps_from", "read_file_setting"]

ENV_PREFIX = "OAUTHVAULT_CREDENTIALS_"
_SECRET_KEYS = ("private_key", "service_account_json")
# Keys per kind of entry, besides api_base_url (which every entry may set).
_APP_KEYS: Mapping[str, frozenset[str]] = {
    "github_app": frozenset({"app_id", "app_slug", "private_key", "private_key_file"}),
    "google_service_account": frozenset(
        {"service_account_file", "service_account_json", "scopes", "subject"}
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

    def applied_to(self, spec: CredentialSpec) -> CredentialSpec:
        """``spec`` with this app's base URL."""
        if self.api_base_url is None:
            return spec
        return dataclasses.replace(spec, api_base_url=self.api_base_url)


def read_file_setting(setting: str, path: str) -> str:
    """The text of a file a setting names (a PEM key, a key file).

    Raises:
        ConfigError: naming the setting (never the content).
    """
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(setting, "names a file that does not exist") from None
    except (OSError, UnicodeDecodeError):
        raise ConfigError(setting, "names a file that cannot be read as UTF-8") from None


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
    settings: dict[str, object] = {}
    for key, value in reader.table.items():
        if key == "api_base_url":
            continue
        if key == "scopes":
            settings[key] = reader.words(key) or ()
        elif key == "token_url":
            settings[key] = check_url(
                reader.setting(key), reader.text(key) or "", allow_loopback_http=True
            )
        elif key in _SECRET_KEYS:
            settings[key] = reader.secret(key)
        elif key.endswith("_file"):
            settings[key.removesuffix("_file")] = read_file_setting(
                reader.setting(key), reader.text(key) or ""
            )
        else:
            settings[key] = reader.text(key) if not isinstance(value, int) else str(value)
    for key in _SECRET_KEYS:
        variable = f"{ENV_PREFIX}{spec.name.upper().replace('-', '_')}_{key.upper()}"
        if environ.get(variable):
            settings[key] = environ[variable]
    return CredentialApp(spec.name, base, MappingProxyType(settings))
