"""The one place that reads the environment.

``Settings`` is built from ``DATABASE_URL``, ``REDIS_URL``, ``OAUTH_ENCRYPTION_KEY``, the
``OAUTHVAULT_CONFIG`` file's name and a few ``OAUTHVAULT_*`` knobs; explicit arguments win
over the environment. It also keeps the ``OAUTHVAULT_*`` variables that fill in or override
the configuration file (provider credentials, public URL, webhook secret), so the readers
of that file (:mod:`oauthvault.providers.config`, :mod:`oauthvault.service.config`) take
explicit arguments and never look at the environment themselves. A bad value fails here,
at startup, with a :class:`ConfigError` naming the variable, never its value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import redis.connection
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oauthvault.crypto.keyfile import key_file_for, load_or_create_key_file
from oauthvault.crypto.keyring import KeyRing
from oauthvault.crypto.usage import ENCRYPTION_LIMIT
from oauthvault.errors import ConfigError
from oauthvault.storage.location import DatabaseLocation, parse_database_url

if TYPE_CHECKING:
    from oauthvault.providers.config import ProviderConfig
    from oauthvault.providers.credential_apps import CredentialApp

__all__ = ["CONFIG_ENV", "CONFIG_VARIABLE_PREFIX", "Settings", "resolve_keyring"]

#: The environment variable naming the TOML configuration file.
CONFIG_ENV = "OAUTHVAULT_CONFIG"
#: Variables with this prefix fill in or override the configuration file.
CONFIG_VARIABLE_PREFIX = "OAUTHVAULT_"

logger = logging.getLogger("oauthvault.config")


class Settings(BaseSettings):
    """Configuration, from keyword arguments first and the environment second.

    Secret-bearing values are ``SecretStr`` and show as ``**********``.
    """

    model_config = SettingsConfigDict(
        env_ignore_empty=True, extra="ignore", populate_by_name=True, frozen=True
    )

    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: SecretStr | None = Field(default=None, validation_alias="REDIS_URL")
    oauth_encryption_key: SecretStr | None = Field(
        default=None, validation_alias="OAUTH_ENCRYPTION_KEY"
    )
    allow_ephemeral_key: bool = Field(
        default=False, validation_alias="OAUTHVAULT_ALLOW_EPHEMERAL_KEY"
    )
    redis_timeout: float = Field(default=0.25, gt=0, validation_alias="OAUTHVAULT_REDIS_TIMEOUT")
    default_cache_ttl: int = Field(
        default=3600, gt=0, validation_alias="OAUTHVAULT_DEFAULT_CACHE_TTL"
    )
    db_connect_timeout: float = Field(
        default=3.0, ge=1, le=600, validation_alias="OAUTHVAULT_DB_CONNECT_TIMEOUT"
    )
    db_pool_timeout: float = Field(
        default=3.0, gt=0, le=600, validation_alias="OAUTHVAULT_DB_POOL_TIMEOUT"
    )
    local_cache: bool = Field(default=True, validation_alias="OAUTHVAULT_LOCAL_CACHE")
    local_cache_size: int = Field(
        default=10_000, gt=0, le=10_000_000, validation_alias="OAUTHVAULT_LOCAL_CACHE_SIZE"
    )
    local_cache_max_age: float = Field(
        default=60.0, gt=0, le=86_400, validation_alias="OAUTHVAULT_LOCAL_CACHE_MAX_AGE"
    )
    listen_url: SecretStr | None = Field(default=None, validation_alias="OAUTHVAULT_LISTEN_URL")
    refresh_timeout: float = Field(
        default=10.0, gt=0, le=300, validation_alias="OAUTHVAULT_REFRESH_TIMEOUT"
    )
    refresh_save_window: float = Field(
        default=30.0, ge=0, le=3600, validation_alias="OAUTHVAULT_REFRESH_SAVE_WINDOW"
    )
    refresh_answer_window: float = Field(
        default=60.0, gt=0, le=3600, validation_alias="OAUTHVAULT_REFRESH_ANSWER_WINDOW"
    )
    client_rejected_backoff: float = Field(
        default=300.0, ge=0, le=86_400, validation_alias="OAUTHVAULT_CLIENT_REJECTED_BACKOFF"
    )
    proxy_connect_timeout: float = Field(
        default=10.0, gt=0, le=600, validation_alias="OAUTHVAULT_PROXY_CONNECT_TIMEOUT"
    )
    proxy_read_timeout: float = Field(
        default=120.0, gt=0, le=3600, validation_alias="OAUTHVAULT_PROXY_READ_TIMEOUT"
    )
    proxy_total_timeout: float = Field(
        default=600.0, gt=0, le=86_400, validation_alias="OAUTHVAULT_PROXY_TOTAL_TIMEOUT"
    )
    #: The longest ``Retry-After`` the proxy waits out before retrying (beyond it, the
    #: provider's answer goes back at once).
    proxy_retry_after_cap: float = Field(
        default=5.0, ge=0, le=600, validation_alias="OAUTHVAULT_PROXY_RETRY_AFTER_CAP"
    )
    proxy_retries: int = Field(default=2, ge=0, le=10, validation_alias="OAUTHVAULT_PROXY_RETRIES")
    audit: bool = Field(default=True, validation_alias="OAUTHVAULT_AUDIT")
    audit_retention_days: int = Field(
        default=90, ge=1, le=3650, validation_alias="OAUTHVAULT_AUDIT_RETENTION_DAYS"
    )
    #: Encryptions a key may make before ``doctor`` fails (it warns past half).
    key_encryption_limit: int = Field(
        default=ENCRYPTION_LIMIT,
        ge=2,
        le=2**32,
        validation_alias="OAUTHVAULT_KEY_ENCRYPTION_LIMIT",
    )
    config_file: Path | None = Field(default=None, validation_alias=CONFIG_ENV)

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here, not when the first connection is made: a typo is a startup error
        # naming REDIS_URL (the value, which may hold a password, is never repeated).
        if value is not None and value.get_secret_value():
            try:
                redis.connection.parse_url(value.get_secret_value())  # type: ignore[no-untyped-call]
            except (ValueError, TypeError):
                raise ValueError(
                    "must be a redis://, rediss:// or unix:// URL (or empty: no cache)"
                ) from None
        return value

    # The OAUTHVAULT_* variables the configuration file's readers use (they may hold
    # secrets: private, so never in repr or a dump).
    _config_variables: Mapping[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def load(
        cls, *, config_variables: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Settings from the environment, with non-``None`` ``overrides`` (by field name) on top.

        ``config_variables`` replaces the ``OAUTHVAULT_*`` variables taken from the
        environment for the configuration file (``{}``: none).

        Raises:
            ConfigError: naming the first variable whose value is unusable.
        """
        given = {name: value for name, value in overrides.items() if value is not None}
        try:
            settings = cls(**given)
        except ValidationError as error:
            first = error.errors(include_input=False, include_url=False)[0]
            field_name = str(first["loc"][0]) if first["loc"] else "settings"
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigError(_variable(field_name), message) from None
        if config_variables is None:
            config_variables = {
                name: value
                for name, value in os.environ.items()
                if name.startswith(CONFIG_VARIABLE_PREFIX)
            }
        settings._config_variables = MappingProxyType(dict(config_variables))
        return settings

    @property
    def config_variables(self) -> Mapping[str, str]:
        """The ``OAUTHVAULT_*`` variables captured with these settings (read-only)."""
        return self._config_variables

    def provider_configs(self) -> dict[str, ProviderConfig]:
        """The ``[providers.*]`` apps of :attr:`config_file` (none without one), with
        credentials from :attr:`config_variables`.

        Raises:
            ConfigError: naming the file and key, or the variable, at fault.
        """
        from oauthvault.providers.config import load_provider_configs

        return load_provider_configs(self.config_file, self.config_variables)

    def credential_apps(self) -> dict[str, CredentialApp]:
        """The ``[credentials.*]`` tables of :attr:`config_file` (none without one), with
        secrets from :attr:`config_variables`.

        Raises:
            ConfigError: naming the file and key, or the variable, at fault.
        """
        from oauthvault.providers.config import read_config_document
        from oauthvault.providers.credential_apps import credential_apps_from

        if self.config_file is None:
            return {}
        document = read_config_document(self.config_file)
        return credential_apps_from(
            document.get("credentials", {}), self.config_variables, source=str(self.config_file)
        )

    @property
    def database_location(self) -> DatabaseLocation:
        url = self.database_url.get_secret_value() if self.database_url else None
        return parse_database_url(url)

    @property
    def listen_location(self) -> DatabaseLocation | None:
        """Where the change feed listens (a direct, session-level PostgreSQL connection),
        when it is not ``DATABASE_URL`` itself.

        Raises:
            ConfigError: naming ``OAUTHVAULT_LISTEN_URL`` (not PostgreSQL, or malformed).
        """
        if self.listen_url is None:
            return None
        try:
            location = parse_database_url(self.listen_url.get_secret_value())
        except ConfigError:
            raise ConfigError("OAUTHVAULT_LISTEN_URL", "is not a usable database URL") from None
        if location.kind != "postgres":
            raise ConfigError("OAUTHVAULT_LISTEN_URL", "must be a PostgreSQL URL")
        return location

    @property
    def redis_url_value(self) -> str | None:
        return self.redis_url.get_secret_value() if self.redis_url else None


def _variable(field_name: str) -> str:
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    return alias if isinstance(alias, str) else field_name


def resolve_keyring(settings: Settings, location: DatabaseLocation) -> KeyRing:
    """The key ring to use, by these rules:

    1. ``OAUTH_ENCRYPTION_KEY`` set: parse it (comma-separated keys, newest first).
    2. Embedded SQLite and no key: the key file beside the database, created on first use.
    3. PostgreSQL and no key: refuse, unless an ephemeral key was explicitly allowed.

    Raises:
        ConfigError: naming ``OAUTH_ENCRYPTION_KEY``.
    """
    if settings.oauth_encryption_key is not None:
        return KeyRing.from_text(settings.oauth_encryption_key.get_secret_value())
    if location.kind == "sqlite" and location.sqlite_path is not None:
        text = load_or_create_key_file(key_file_for(location.sqlite_path))
        return KeyRing.from_text(text, setting=f"key file {key_file_for(location.sqlite_path)}")
    if settings.allow_ephemeral_key:
        logger.warning(
            "OAUTH_ENCRYPTION_KEY is not set: using an ephemeral key. Tokens stored now "
            "cannot be decrypted after a restart (OAUTHVAULT_ALLOW_EPHEMERAL_KEY is set)."
        )
        return KeyRing.generate()
    raise ConfigError(
        "OAUTH_ENCRYPTION_KEY",
        "must be set when DATABASE_URL is PostgreSQL; generate one with `oauthvault keygen` "
        "(or set OAUTHVAULT_ALLOW_EPHEMERAL_KEY=1 to accept losing tokens on restart)",
    )
