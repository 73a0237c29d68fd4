"""The one place that reads the environment.

``Settings`` is built from ``DATABASE_URL``, ``REDIS_URL``, ``OAUTH_ENCRYPTION_KEY`` and a
few ``OAUTHVAULT_*`` knobs; explicit arguments win over the environment. A bad value
fails here, at startup, with a :class:`ConfigError` naming the variable, never its value.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from oauthvault.crypto.keyfile import key_file_for, load_or_create_key_file
from oauthvault.crypto.keyring import KeyRing
from oauthvault.errors import ConfigError
from oauthvault.storage.location import DatabaseLocation, parse_database_url

__all__ = ["Settings", "resolve_keyring"]

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

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment, with non-``None`` ``overrides`` (by field name) on top.

        Raises:
            ConfigError: naming the first variable whose value is unusable.
        """
        given = {name: value for name, value in overrides.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as error:
            first = error.errors(include_input=False, include_url=False)[0]
            field_name = str(first["loc"][0]) if first["loc"] else "settings"
            raise ConfigError(_variable(field_name), first["msg"]) from None

    @property
    def database_location(self) -> DatabaseLocation:
        url = self.database_url.get_secret_value() if self.database_url else None
        return parse_database_url(url)

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
