"""Typed reads from one parsed TOML table, each failure a :class:`ConfigError` naming the key.

Shared by the provider catalog and the user's provider configuration so that both check
values the same way. Messages name the key and the rule, never the value: a value may be a
client secret.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Collection, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from oauthvault.errors import ConfigError

__all__ = ["TableReader", "check_url"]

_Choice = TypeVar("_Choice", bound=str)
_Value = TypeVar("_Value")

# Control characters and whitespace never belong in an id, URL, scope or parameter.
_NO_SPACE = re.compile(r"^\S+$")
_LOOPBACK_NAMES = frozenset({"localhost"})


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(setting: str, value: str, *, allow_loopback_http: bool) -> str:
    """Return ``value`` if it is an absolute https URL without query-breaking parts.

    ``http`` is accepted only for loopback hosts, and only when ``allow_loopback_http``
    (local development and test providers).

    Raises:
        ConfigError: naming ``setting``.
    """
    if not _NO_SPACE.match(value):
        raise ConfigError(setting, "must be a URL without spaces or control characters")
    parts = urlsplit(value)
    if not parts.netloc or parts.hostname is None:
        raise ConfigError(setting, "must be an absolute URL with a host")
    if parts.fragment or "#" in value:
        raise ConfigError(setting, "must not have a fragment")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(setting, "must not carry credentials")
    if parts.scheme == "https":
        return value
    if parts.scheme == "http" and allow_loopback_http and _is_loopback(parts.hostname):
        return value
    rule = "https (or http on a loopback host)" if allow_loopback_http else "https"
    raise ConfigError(setting, f"must use {rule}")


class TableReader:
    """Reads keys of one TOML table; ``where`` prefixes every setting name it reports."""

    def __init__(self, table: Mapping[str, object], where: str) -> None:
        self.table = table
        self.where = where

    def setting(self, key: str) -> str:
        """The full setting name of ``key``, as error messages show it."""
        separator = "" if key.startswith("[") else "."  # list items read `scopes[0]`
        return f"{self.where}{separator}{key}"

    def check_keys(self, allowed: Collection[str], required: Collection[str] = ()) -> None:
        """Raise :class:`ConfigError` for the first unknown key, then the first missing one."""
        for key in sorted(self.table):
            if key not in allowed:
                raise ConfigError(self.setting(key), "is not a known key")
        for key in sorted(required):
            if key not in self.table:
                raise ConfigError(self.setting(key), "is required")

    def _get(self, key: str, kind: type[_Value], description: str) -> _Value | None:
        value = self.table.get(key)
        if value is None:
            return None
        # bool is an int subclass; `lifetime = true` is a typo, not a number.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(self.setting(key), f"must be {description}")
        return value

    def text(self, key: str) -> str | None:
        """A non-empty string without leading or trailing whitespace, or ``None`` if absent."""
        value = self._get(key, str, "a string")
        if value is None:
            return None
        if not value or value != value.strip() or any(ord(c) < 32 for c in value):
            raise ConfigError(
                self.setting(key),
                "must be non-empty, without surrounding spaces or control characters",
            )
        return value

    def secret(self, key: str) -> str | None:
        """A non-empty string of any shape (a secret or a PEM key), or ``None`` if absent."""
        value = self._get(key, str, "a string")
        if value == "":
            raise ConfigError(self.setting(key), "must not be empty")
        return value

    def word(self, key: str) -> str | None:
        """A non-empty string without whitespace (an id, a scope), or ``None`` if absent."""
        value = self.text(key)
        if value is not None and not _NO_SPACE.match(value):
            raise ConfigError(self.setting(key), "must not contain whitespace")
        return value

    def url(self, key: str, *, allow_loopback_http: bool) -> str | None:
        """An https URL (see :func:`check_url`), or ``None`` if absent."""
        value = self.text(key)
        if value is None:
            return None
        return check_url(self.setting(key), value, allow_loopback_http=allow_loopback_http)

    def choice(self, key: str, choices: tuple[_Choice, ...]) -> _Choice | None:
        """One of ``choices``, or ``None`` if absent."""
        value = self.table.get(key)
        if value is None:
            return None
        for choice in choices:
            if value == choice:
                return choice
        raise ConfigError(self.setting(key), "must be one of " + ", ".join(map(repr, choices)))

    def boolean(self, key: str) -> bool | None:
        """``true`` or ``false``, or ``None`` if absent."""
        return self._get(key, bool, "true or false")

    def positive_int(self, key: str) -> int | None:
        """An integer above zero, or ``None`` if absent."""
        value = self._get(key, int, "an integer")
        if value is None:
            return None
        if value <= 0:
            raise ConfigError(self.setting(key), "must be greater than zero")
        return value

    def words(self, key: str, *, spaces: bool = False) -> tuple[str, ...] | None:
        """A list of distinct strings without whitespace (scopes), or ``None`` if absent;
        with ``spaces``, inner spaces are allowed (error messages)."""
        value: list[object] | None = self._get(key, list, "a list of strings")
        if value is None:
            return None
        items = TableReader({f"[{i}]": item for i, item in enumerate(value)}, self.setting(key))
        read = items.text if spaces else items.word
        result = tuple(read(f"[{i}]") or "" for i in range(len(value)))
        if len(set(result)) != len(result):
            raise ConfigError(self.setting(key), "must not repeat an item")
        return result

    def string_map(self, key: str) -> dict[str, str] | None:
        """A table of string values (query parameters), or ``None`` if absent."""
        value: dict[str, object] | None = self._get(key, dict, "a table of strings")
        if value is None:
            return None
        inner = TableReader(value, self.setting(key))
        result: dict[str, str] = {}
        for name in value:
            if not _NO_SPACE.match(name):
                raise ConfigError(inner.setting(name), "must be a name without whitespace")
            text = inner.text(name)
            result[name] = text or ""
        return result

    def sub_tables(self, key: str) -> dict[str, object] | None:
        """A table of tables (``[x.<key>.<name>]``), or ``None`` if absent; each inner
        value is left for the caller to check."""
        value: dict[str, object] | None = self._get(key, dict, "a table of tables")
        return value


def catalog_tables(text: str, source: str) -> dict[str, object]:
    """The ``[providers.<name>]`` tables of a catalog document (``schema_version = 1``).

    Raises:
        ConfigError: the document is not TOML, has another top-level key, another schema
            version, or no table of providers.
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
    return tables
