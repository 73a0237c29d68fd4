"""A provider API's constant request headers and rate-limit headers (pure: no I/O).

Catalog keys, checked here for both catalogs and for a deployment's provider tables:

- ``api_headers`` (OAuth entries): header name → constant value sent with every request
  to the provider's API (``Notion-Version = "2022-06-28"``). A credential entry's constant
  ``[headers]`` (those without a ``{placeholder}``) play the same part.
- ``rate_limit_headers``: the names of the provider's documented rate-limit answer headers
  (``X-RateLimit-Remaining``); they reach the caller unchanged (none is hop-by-hop).
- ``rate_limit_reset``: ``{ header = "X-RateLimit-Reset", format = "epoch" }``, the
  documented header that says when a 429 may be tried again, and how: ``epoch`` (Unix
  seconds), ``epoch_ms`` (Unix milliseconds) or ``seconds`` (seconds from now, the IETF
  draft's ``RateLimit-Reset``). Used only when the 429 has no ``Retry-After``.

:func:`outgoing_headers` merges the caller's headers, the constants and the credential:
the credential's headers always win (a caller's header of the same name is not sent, so
nothing goes twice); a constant is sent unless the caller sent a header of that name (a
caller may pin another API version; a bare ``Accept: */*`` does not count).
:func:`retry_wait` reads the wait of a 429 or 503.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from oauthvault.errors import ConfigError
from oauthvault.providers.tables import TableReader

__all__ = [
    "RATE_LIMIT_KEYS",
    "RESET_FORMATS",
    "RateLimitReset",
    "ResetFormat",
    "outgoing_headers",
    "read_api_headers",
    "read_rate_limit_headers",
    "read_rate_limit_reset",
    "reset_wait",
    "retry_after",
    "retry_wait",
]

ResetFormat = Literal["epoch", "epoch_ms", "seconds"]
RESET_FORMATS: tuple[ResetFormat, ...] = ("epoch", "epoch_ms", "seconds")
#: The rate-limit keys of an entry (both catalogs) and of a provider table.
RATE_LIMIT_KEYS = ("rate_limit_headers", "rate_limit_reset")

# RFC 9110 §5.6.2 token characters.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# RFC 9110 §7.6.1 and the proxy-era names; a constant may never be one of them, nor a
# header that carries a credential or that the HTTP client sets itself.
_REFUSED_NAMES = frozenset(
    """connection keep-alive proxy-authenticate proxy-authorization proxy-connection te
    trailer transfer-encoding upgrade authorization cookie set-cookie host content-length
    expect""".split()
)
_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,998}[\x21-\x7e])?$")
# An epoch before 2001-09-09 (1e9 s) is not a reset time: a misread header.
_MIN_EPOCH = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RateLimitReset:
    """The header that says when a rate-limited request may be sent again, and its format."""

    header: str
    format: ResetFormat


def _check_name(setting: str, name: str) -> str:
    if not _HEADER_NAME.match(name):
        raise ConfigError(setting, "is not a valid header name")
    lower = name.lower()
    if lower in _REFUSED_NAMES or lower.startswith("oauthvault-"):
        raise ConfigError(setting, "is a header the vault or the HTTP client sets")
    return name


def read_api_headers(reader: TableReader, key: str = "api_headers") -> dict[str, str] | None:
    """The ``api_headers`` table: header names (token characters, none set by the vault or
    the HTTP client, none twice in another case) to one-line printable ASCII constants;
    ``None`` when absent.

    Raises:
        ConfigError: naming ``<where>.api_headers[.<name>]``.
    """
    value = reader.table.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(reader.setting(key), "must be a table of header names and values")
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, text in value.items():
        setting = f"{reader.setting(key)}.{name}"
        _check_name(setting, name)
        if name.lower() in seen:
            raise ConfigError(setting, "names a header already set")
        seen.add(name.lower())
        if not isinstance(text, str) or not _VALUE.match(text) or "{" in text:
            raise ConfigError(setting, "must be a one-line printable constant")
        headers[name] = text
    return headers


def read_rate_limit_headers(reader: TableReader) -> tuple[str, ...] | None:
    """The ``rate_limit_headers`` list: distinct header names (case-insensitively), none
    hop-by-hop; ``None`` when absent.

    Raises:
        ConfigError: naming ``<where>.rate_limit_headers[<i>]``.
    """
    names = reader.words("rate_limit_headers")
    if names is None:
        return None
    if not names:
        raise ConfigError(reader.setting("rate_limit_headers"), "must not be empty")
    seen: set[str] = set()
    for i, name in enumerate(names):
        setting = reader.setting(f"rate_limit_headers[{i}]")
        _check_name(setting, name)
        if name.lower() in seen:
            raise ConfigError(setting, "names a header already listed")
        seen.add(name.lower())
    return names


def read_rate_limit_reset(
    reader: TableReader, listed: Iterable[str] | None
) -> RateLimitReset | None:
    """The ``rate_limit_reset`` table (``header``, ``format``); its header must be one of
    ``listed`` (the entry's ``rate_limit_headers``). ``None`` when absent.

    Raises:
        ConfigError: naming ``<where>.rate_limit_reset[.<key>]``.
    """
    table = reader.sub_tables("rate_limit_reset")
    if table is None:
        return None
    sub = TableReader(table, reader.setting("rate_limit_reset"))
    sub.check_keys(("header", "format"), ("header", "format"))
    header = _check_name(sub.setting("header"), sub.word("header") or "")
    form = sub.choice("format", RESET_FORMATS)
    assert form is not None  # noqa: S101 - required above
    if header.lower() in ("retry-after",):
        raise ConfigError(sub.setting("header"), "Retry-After is always read")
    if header.lower() not in {name.lower() for name in listed or ()}:
        raise ConfigError(sub.setting("header"), "must be one of rate_limit_headers")
    return RateLimitReset(header, form)


def outgoing_headers(
    forwarded: Iterable[tuple[str, str]],
    constants: Mapping[str, str],
    credential: Mapping[str, str],
) -> list[tuple[str, str]]:
    """The headers of a proxied request: the caller's ``forwarded`` ones (already cleaned),
    the API's ``constants`` and the ``credential``'s. A credential header always goes, and
    a caller's header of its name does not, unless the name is also a constant's (a
    credential entry's constant ``[headers]``, such as ``anthropic-version``): a constant
    goes unless the caller sent its name (a caller's ``Accept: */*``, what HTTP clients send
    unasked, gives way to a constant ``Accept``). Names compare case-insensitively; nothing
    goes twice."""
    constant = {name.lower() for name in constants}
    # "Accept: */*" is what HTTP clients send unasked: not a choice over a constant Accept.
    forwarded = [
        (name, value)
        for name, value in forwarded
        if not (name.lower() == "accept" and value.strip() == "*/*" and "accept" in constant)
    ]
    caller = {name.lower() for name, _ in forwarded}
    placed = {name.lower() for name in credential}
    headers = [
        (name, value)
        for name, value in forwarded
        if name.lower() not in placed or name.lower() in constant
    ]
    for name, value in credential.items():
        if not (name.lower() in constant and name.lower() in caller):
            headers.append((name, value))
    for name, value in constants.items():
        if name.lower() not in caller and name.lower() not in placed:
            headers.append((name, value))
    return headers


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` asks for (delay-seconds or an HTTP date), else ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def reset_wait(rule: RateLimitReset, value: str | None, now: datetime) -> float | None:
    """Seconds until the reset ``value`` of ``rule``'s header names (never negative);
    ``None`` when absent or not in the documented format (digits only; an epoch before
    2001 is taken for a misread)."""
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 16:
        return None
    number = int(value)
    if rule.format == "seconds":
        return float(number)
    seconds = number / 1000 if rule.format == "epoch_ms" else float(number)
    if seconds < _MIN_EPOCH:
        return None
    return max(0.0, seconds - now.timestamp())


def retry_wait(
    status: int, headers: Mapping[str, str], rule: RateLimitReset | None, now: datetime
) -> float | None:
    """The wait a 429 or 503 asks for: its ``Retry-After``, else (a 429 only) the reset
    header the catalog documents (``rule``); ``None`` when neither says. ``headers`` is
    read case-insensitively (an httpx or Starlette header mapping)."""
    wait = retry_after(headers.get("retry-after"), now)
    if wait is None and status == 429 and rule is not None:
        wait = reset_wait(rule, headers.get(rule.header), now)
    return wait
