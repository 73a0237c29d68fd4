"""The user's provider configuration: which OAuth apps oauthvault connects with.

A TOML file (normally named by ``OAUTHVAULT_CONFIG``) holds one table per provider::

    [providers.google]                 # in the catalog: endpoints come from there
    client_id = "..."
    client_secret = "..."

    [providers.google-mail]            # an integration: a second app of a catalog provider
    provider = "google"
    client_id = "..."
    client_secret = "..."
    scopes = ["openid", "https://www.googleapis.com/auth/gmail.readonly"]

    [providers.corp]                   # not in the catalog: discovery (OpenID, RFC 8414)
    issuer = "https://login.example.com"
    client_id = "..."
    client_secret = "..."
    scopes = ["openid", "offline_access"]
    revocation_endpoint = "https://login.example.com/revoke"   # on top of what is found

A table may override its provider's ``display_name``, endpoints and ``revocation_method``
(:mod:`oauthvault.providers.overrides`), whether the spec comes from the catalog or from
discovery.

``OAUTHVAULT_PROVIDER_<NAME>_CLIENT_ID``, ``_CLIENT_SECRET`` and ``_PRIVATE_KEY`` (``NAME``
upper-cased, ``-`` as ``_``) fill in or override the file, so secrets need not sit in it.
Other top-level tables of the file are left to their own readers.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pydantic import SecretStr

from oauthvault.errors import ConfigError
from oauthvault.providers.apple import check_apple_id, load_apple_key
from oauthvault.providers.catalog import (
    CUSTOM_KEYS,
    RESERVED_PARAMS,
    check_provider_name,
    load_catalog,
    parse_spec,
)
from oauthvault.providers.overrides import OVERRIDE_KEYS, SpecOverrides, read_overrides
from oauthvault.providers.spec import ENDPOINT_KEYS, URL_KEYS, ProviderSpec, fill_placeholders
from oauthvault.providers.tables import TableReader

__all__ = ["ProviderConfig", "load_provider_configs", "provider_configs_from"]

logger = logging.getLogger("oauthvault.providers")

_ENV_PREFIX = "OAUTHVAULT_PROVIDER_"
_ENV_KEYS = ("client_id", "client_secret", "private_key")
_COMMON_KEYS = frozenset(
    {"client_id", "client_secret", "scopes", "redirect_uri", "extra_authorize_params"}
)
_APPLE_KEYS = frozenset({"team_id", "key_id", "private_key"})
_TOML_LOCATION = re.compile(r"\(at (line \d+, column \d+|end of document)\)")


def _readonly(values: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One configured provider app. Secrets are hidden from ``repr`` and ``str``.

    ``spec`` has ``{client_id}`` and the app's fixed connection parameters
    (``placeholders``) filled in; :meth:`spec_for` fills the rest for one connection. It
    is ``None`` for a provider known only by ``issuer`` until :meth:`resolved` is given the
    discovered spec.
    ``scopes`` is ``None`` unless the user overrides the provider's default scopes.
    ``overrides`` are the table's own ``display_name``, endpoints and ``revocation_method``,
    already in ``spec`` and applied by :meth:`resolved` to a discovered one.
    """

    name: str
    spec: ProviderSpec | None
    client_id: str
    client_secret: SecretStr | None = field(default=None, repr=False)
    scopes: tuple[str, ...] | None = None
    redirect_uri: str | None = None
    extra_authorize_params: Mapping[str, str] = field(
        default_factory=lambda: _readonly({}), hash=False
    )
    placeholders: Mapping[str, str] = field(default_factory=lambda: _readonly({}), hash=False)
    issuer: str | None = None
    #: The catalog entry this app uses, when its own name is not one (an integration).
    catalog_provider: str | None = None
    team_id: str | None = None
    key_id: str | None = None
    private_key: SecretStr | None = field(default=None, repr=False)
    overrides: SpecOverrides = field(default_factory=SpecOverrides)

    def __post_init__(self) -> None:
        if self.scopes is not None:
            object.__setattr__(self, "scopes", tuple(self.scopes))
        object.__setattr__(self, "extra_authorize_params", _readonly(self.extra_authorize_params))
        object.__setattr__(self, "placeholders", _readonly(self.placeholders))

    def _require_spec(self) -> ProviderSpec:
        if self.spec is None:
            raise ConfigError(f"providers.{self.name}.issuer", "has not been discovered yet")
        return self.spec

    @property
    def requested_scopes(self) -> tuple[str, ...]:
        """The user's ``scopes`` if given, else the provider's default scopes.

        Raises:
            ConfigError: the provider still awaits discovery (see :meth:`resolved`).
        """
        return self.scopes if self.scopes is not None else self._require_spec().default_scopes

    @property
    def authorize_params(self) -> Mapping[str, str]:
        """The provider's extra authorization parameters with the user's on top.

        Raises:
            ConfigError: the provider still awaits discovery (see :meth:`resolved`).
        """
        return _readonly(
            {**self._require_spec().extra_authorize_params, **self.extra_authorize_params}
        )

    def spec_for(self, params: Mapping[str, str]) -> ProviderSpec:
        """The spec with one connection's parameters filled into its URLs.

        Raises:
            ConfigError: a URL still needs a value, or a value is not valid for it.
        """
        spec = self._require_spec()
        if not spec.placeholders:
            return spec
        values = {key: params[key] for key in spec.placeholders if key in params}
        return fill_placeholders(spec, values, where=f"providers.{self.name}", context=params)

    def resolved(self, spec: ProviderSpec) -> ProviderConfig:
        """A copy using ``spec`` (normally from :func:`~oauthvault.providers.discover`) with
        the table's :attr:`overrides` on top.

        Raises:
            ConfigError: ``spec.issuer`` is not this provider's issuer.
        """
        if self.issuer is not None and spec.issuer != self.issuer:
            raise ConfigError(f"providers.{self.name}.issuer", "differs from the spec's issuer")
        values = {"client_id": self.client_id, **self.placeholders}
        where = f"providers.{self.name}"
        filled = fill_placeholders(
            self.overrides.apply(spec), values, where=where, partial=True, keys=URL_KEYS
        )
        return dataclasses.replace(self, spec=filled)


def read_config_document(path: Path) -> dict[str, object]:
    """The configuration file's tables (each reader checks its own).

    Raises:
        ConfigError: the file is missing, unreadable or not TOML (never quoting it).
    """
    return _read_document(path)


def _read_document(path: Path) -> dict[str, object]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "does not exist") from None
    except OSError as error:
        raise ConfigError(str(path), f"cannot be read ({error.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        # The location only: the decoder's message could quote a secret's line.
        location = _TOML_LOCATION.search(str(error))
        where = f" ({location[1]})" if location else ""
        raise ConfigError(str(path), f"is not valid UTF-8 TOML{where}") from None


def _environment(name: str, environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{key: (variable, value)}`` for this provider's non-empty credential variables."""
    found: dict[str, tuple[str, str]] = {}
    for key in _ENV_KEYS:
        variable = f"{_ENV_PREFIX}{name.upper().replace('-', '_')}_{key.upper()}"
        if environ.get(variable):
            found[key] = (variable, environ[variable])
    return found


def _credential(
    reader: TableReader, env: dict[str, tuple[str, str]], key: str, *, secret: bool
) -> tuple[str | None, str]:
    """The value of ``key``, from the environment first, and the setting it came from."""
    if key in env:
        variable, value = env[key]
        if not secret and any(c.isspace() or not c.isprintable() for c in value):
            raise ConfigError(variable, "must not contain whitespace or control characters")
        return value, variable
    return (reader.secret(key) if secret else reader.word(key)), reader.setting(key)


def _check_unmatched(configs: Mapping[str, ProviderConfig], environ: Mapping[str, str]) -> None:
    expected = {
        f"{_ENV_PREFIX}{name.upper().replace('-', '_')}_{key.upper()}"
        for name in configs
        for key in _ENV_KEYS
    }
    suffixes = tuple(f"_{key.upper()}" for key in _ENV_KEYS)
    for variable in sorted(environ):
        if variable.startswith(_ENV_PREFIX) and variable.endswith(suffixes):
            if variable not in expected:
                # The variable's name only: its value may be a secret.
                logger.warning("%s matches no [providers.<name>] table; ignored", variable)


def _apple_id(reader: TableReader, key: str) -> str:
    value = reader.word(key)
    if value is None:
        raise ConfigError(reader.setting(key), "is required for this provider")
    return check_apple_id(value, reader.setting(key))


def _parse_provider(
    name: str, table: dict[str, object], where: str, environ: Mapping[str, str]
) -> ProviderConfig:
    reader = TableReader(table, where)
    env = _environment(name, environ)
    catalog_name = name
    if "provider" in table:
        catalog_name = reader.word("provider") or name
        if catalog_name not in load_catalog():
            raise ConfigError(reader.setting("provider"), "is not a catalog provider")
        if catalog_name == name:
            raise ConfigError(reader.setting("provider"), "names this table itself")
    spec = load_catalog().get(catalog_name)
    if spec is not None and catalog_name != name:
        spec = dataclasses.replace(spec, name=name)
    issuer: str | None = None
    overrides = SpecOverrides()
    if spec is not None:
        apple = spec.client_secret_kind == "apple_es256_jwt"  # noqa: S105 -- a kind, no secret
        apple_keys = _APPLE_KEYS if apple else frozenset()
        link_params = {p.name for p in spec.connection_params if p.source == "link"}
        allowed = _COMMON_KEYS | link_params | apple_keys | OVERRIDE_KEYS | {"provider"}
        reader.check_keys(allowed)
        in_time = {
            p.name for p in spec.connection_params if p.source in ("link", "token", "callback")
        }
        overrides = read_overrides(
            reader,
            placeholders={"client_id", *in_time},
            endpoints=ENDPOINT_KEYS,
            api_placeholders={p.name for p in spec.connection_params if p.pattern is not None},
            has_api_base_url=spec.api_base_url is not None,
        )
        spec = overrides.apply(spec)
    else:
        apple = False
        both = "authorization_endpoint" in table and "token_endpoint" in table
        if "issuer" in table and not both:
            # Discovery describes it; the table may override what it finds.
            reader.check_keys(_COMMON_KEYS | CUSTOM_KEYS | OVERRIDE_KEYS)
            fixed = sorted(table.keys() & (CUSTOM_KEYS - OVERRIDE_KEYS))
            if fixed:
                setting = reader.setting(fixed[0])
                raise ConfigError(setting, "comes from discovery unless both endpoints are given")
            issuer = reader.url("issuer", allow_loopback_http=True)
            endpoints = set(ENDPOINT_KEYS) - {"issuer"}
            overrides = read_overrides(reader, placeholders={"client_id"}, endpoints=endpoints)
        elif "authorization_endpoint" in table or "token_endpoint" in table:
            reader.check_keys(_COMMON_KEYS | CUSTOM_KEYS)
            spec_table = {key: value for key, value in table.items() if key in CUSTOM_KEYS}
            spec = parse_spec(name, TableReader(spec_table, where), catalog=False)
            issuer = spec.issuer
        else:
            reader.check_keys(_COMMON_KEYS | CUSTOM_KEYS)
            raise ConfigError(
                where,
                "is not in the catalog: give issuer (OpenID Connect discovery), "
                "or authorization_endpoint and token_endpoint",
            )
    client_id, client_id_setting = _credential(reader, env, "client_id", secret=False)
    if client_id is None:
        raise ConfigError(client_id_setting, f"is required (or set {_ENV_PREFIX}..._CLIENT_ID)")
    client_secret, secret_setting = _credential(reader, env, "client_secret", secret=True)
    team_id = key_id = private_key = None
    if apple:
        if client_secret is not None:
            raise ConfigError(secret_setting, "is generated from private_key for this provider")
        team_id = _apple_id(reader, "team_id")
        key_id = _apple_id(reader, "key_id")
        private_key, key_setting = _credential(reader, env, "private_key", secret=True)
        if private_key is None:
            raise ConfigError(key_setting, "is required for this provider")
        load_apple_key(private_key, key_setting)
    else:
        if "private_key" in env:
            raise ConfigError(env["private_key"][0], "is only used by Sign in with Apple")
        if client_secret is None:
            raise ConfigError(secret_setting, "is required (or set its environment variable)")
    scopes = reader.words("scopes")
    if scopes is not None and spec is not None and spec.scope_separator == ",":
        if any("," in scope for scope in scopes):
            raise ConfigError(reader.setting("scopes"), "a scope contains the separator ','")
    params = reader.string_map("extra_authorize_params") or {}
    reserved = sorted(params.keys() & RESERVED_PARAMS)
    if reserved:
        setting = f"{reader.setting('extra_authorize_params')}.{reserved[0]}"
        raise ConfigError(setting, "is set by the authorization request itself")
    placeholders: dict[str, str] = {}
    for param in spec.connection_params if spec is not None else ():
        value = reader.word(param.name) if param.source == "link" else None
        if value is not None:
            if not param.accepts(value):
                raise ConfigError(reader.setting(param.name), f"must be a valid {param.label}")
            placeholders[param.name] = value
    config = ProviderConfig(
        name=name,
        spec=None,
        client_id=client_id,
        client_secret=SecretStr(client_secret) if client_secret is not None else None,
        scopes=scopes,
        redirect_uri=reader.url("redirect_uri", allow_loopback_http=True),
        extra_authorize_params=params,
        placeholders=placeholders,
        issuer=issuer,
        catalog_provider=catalog_name if catalog_name != name else None,
        team_id=team_id,
        key_id=key_id,
        private_key=SecretStr(private_key) if private_key is not None else None,
        overrides=overrides,
    )
    if spec is None:
        return config
    values = {"client_id": client_id, **placeholders}
    filled = fill_placeholders(spec, values, where=where, partial=True, keys=URL_KEYS)
    return dataclasses.replace(config, spec=filled)


def load_provider_configs(
    path: Path | None, environ: Mapping[str, str]
) -> dict[str, ProviderConfig]:
    """Read the ``[providers.<name>]`` tables of ``path``, with credentials from ``environ``.

    ``environ`` holds the credential variables (``OAUTHVAULT_PROVIDER_*``; normally
    :attr:`oauthvault.Settings.config_variables`); ``path=None`` configures no provider.
    A name in the catalog takes its endpoints from there; any other name needs ``issuer``
    (its spec is discovered later, see :meth:`ProviderConfig.resolved`) or both
    ``authorization_endpoint`` and ``token_endpoint``. Either kind may override its
    ``display_name``, endpoints and ``revocation_method``. Credential variables matching no
    table are logged (by name) and ignored.

    Raises:
        ConfigError: ``.setting`` names the file and key (``<path>: providers.<name>.<key>``)
            or the environment variable at fault; values are never shown.
    """
    document = _read_document(path) if path is not None else {}
    return provider_configs_from(document.get("providers", {}), environ, source=str(path))


def provider_configs_from(
    tables: object, environ: Mapping[str, str] | None = None, *, source: str = "providers"
) -> dict[str, ProviderConfig]:
    """Provider apps from data: ``tables`` is shaped like the file's ``[providers]`` table
    (``{"google": {"client_id": "…", "client_secret": "…"}}``), checked by the same rules;
    ``environ`` may fill credentials as for the file (default: none). ``source`` names
    where the data came from in errors.

    Raises:
        ConfigError: as :func:`load_provider_configs`.
    """
    environ = {} if environ is None else environ
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: providers", "must be a table of [providers.<name>] tables")
    configs: dict[str, ProviderConfig] = {}
    for name, table in tables.items():
        where = f"{source}: providers.{name}"
        check_provider_name(name, where)
        if not isinstance(table, dict):
            raise ConfigError(where, "must be a table")
        configs[name] = _parse_provider(name, table, where, environ)
    _check_unmatched(configs, environ)
    return configs
