"""Connection parameters: the per-connection values a provider needs or hands back.

A catalog entry declares them under ``[providers.<name>.connection_params.<param>]``. Each
comes from one place:

- ``link``: given when the connect flow starts (a Shopify shop, a Zendesk subdomain, a
  Microsoft tenant, a Salesforce login host); it may fill ``{param}`` in the entry's URLs,
  or pick a documented host per value: ``{param.word}`` is the host its ``hosts.word`` table
  names for the value (Amazon's ``region`` ``EU``: ``{region.token}`` is
  ``api.amazon.co.uk``);
- ``callback``: a query parameter of the provider's callback (QuickBooks ``realmId``); it
  may fill ``{param}`` in the URLs used after the callback (Zoho's ``accounts-server``: the
  token, refresh and revocation host), and then has a ``default`` that may name link
  parameters (``https://accounts.{domain}``), for connections whose callback did not say;
- ``token``: a dotted path in the token answer (Salesforce ``instance_url``, Slack
  ``team.id``);
- ``identity``: a dotted path in the answer of the entry's ``identity_endpoint``, called
  once after connect with the new access token (Atlassian cloud id, Xero tenant id).

Pure functions: they check and pick values, and never fetch anything. Values are short,
printable, and match the parameter's pattern; a value that fills a URL must also be a
host-safe word, so no value can move a request (and the client secret) to another server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from oauthvault.errors import ConfigError, InvalidInput, ProviderError
from oauthvault.providers.tables import TableReader

__all__ = [
    "MAX_PARAM_LENGTH",
    "SOURCES",
    "ConnectionParam",
    "ParamSource",
    "check_given_params",
    "default_for",
    "missing_link_params",
    "parse_params",
    "pick",
    "pick_params",
]

ParamSource = Literal["link", "callback", "token", "identity"]
SOURCES: tuple[ParamSource, ...] = ("link", "callback", "token", "identity")
MAX_PARAM_LENGTH = 512
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
# What a value filling a URL may hold: a host label run, a domain, a GUID.
URL_SAFE_VALUE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_DEFAULT_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]{0,49})\}")
_PARAM_KEYS = frozenset(
    {"label", "source", "required", "pattern", "path", "default", "example", "hosts"}
)
_HOST_WORD = re.compile(r"^[a-z][a-z0-9_]{0,29}$")


@dataclass(frozen=True, slots=True)
class ConnectionParam:
    """One declared connection parameter (see the module docstring)."""

    name: str
    label: str
    source: ParamSource
    required: bool = False
    pattern: str | None = None
    path: str | None = None
    default: str | None = None
    example: str | None = None
    #: ``(word, ((value, host), ...))`` pairs: the host ``{name.word}`` stands for, per value.
    hosts: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def accepts(self, value: str) -> bool:
        """True when ``value`` is a short printable string matching the pattern."""
        if not value or len(value) > MAX_PARAM_LENGTH or not value.isprintable():
            return False
        if self.hosts and all(key != value for key, _ in self.hosts[0][1]):
            return False  # a value without documented hosts
        return self.pattern is None or re.fullmatch(self.pattern, value) is not None

    def host(self, word: str, value: str) -> str | None:
        """The host ``{name.word}`` stands for when the parameter is ``value`` (None: none
        is declared)."""
        for known, table in self.hosts:
            if known == word:
                return next((host for key, host in table if key == value), None)
        return None


def parse_params(reader: TableReader, key: str) -> tuple[ConnectionParam, ...]:
    """The ``connection_params`` sub-tables of a catalog entry.

    Raises:
        ConfigError: naming ``<entry>.connection_params.<param>.<key>``.
    """
    tables = reader.sub_tables(key)
    if tables is None:
        return ()
    params: list[ConnectionParam] = []
    for name, table in tables.items():
        where = reader.setting(f"{key}.{name}")
        if not _PARAM_NAME.match(name):
            raise ConfigError(where, "names are letters, digits and _, starting with a letter")
        if not isinstance(table, dict):
            raise ConfigError(where, "must be a table")
        sub = TableReader(table, where)
        sub.check_keys(_PARAM_KEYS, ("label", "source"))
        source = sub.choice("source", SOURCES)
        assert source is not None  # noqa: S101 - required above
        pattern = sub.text("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error:
                raise ConfigError(
                    sub.setting("pattern"), "is not a valid regular expression"
                ) from None
        path = sub.text("path")
        if source == "link" and path is not None:
            raise ConfigError(sub.setting("path"), "is only for callback, token and identity")
        if source != "link" and path is None:
            raise ConfigError(sub.setting("path"), "is required for this source")
        if path is not None and not _PATH.match(path):
            raise ConfigError(sub.setting("path"), "must be dot-separated names or indexes")
        param = ConnectionParam(
            name=name,
            label=sub.text("label") or name,
            source=source,
            required=sub.boolean("required") is True,
            pattern=pattern,
            path=path,
            default=sub.text("default"),
            example=sub.text("example"),
            hosts=_parse_hosts(sub, source, pattern),
        )
        if param.default is not None and "{" in param.default:
            if source != "callback":
                raise ConfigError(sub.setting("default"), "may name parameters only on callback")
        elif param.default is not None and not param.accepts(param.default):
            raise ConfigError(sub.setting("default"), "does not match the pattern")
        params.append(param)
    return tuple(params)


def _parse_hosts(
    sub: TableReader, source: str, pattern: str | None
) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """A link parameter's ``hosts`` table: ``word -> {value: host}``, every value matching
    the pattern and every host a host-safe name."""
    tables = sub.sub_tables("hosts")
    if tables is None:
        return ()
    where = sub.setting("hosts")
    if source != "link" or pattern is None:
        raise ConfigError(where, "is only for a link parameter with a pattern")
    hosts: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for word, table in tables.items():
        if not _HOST_WORD.match(word) or not isinstance(table, dict) or not table:
            raise ConfigError(f"{where}.{word}", "must be a table of values and hosts")
        pairs: list[tuple[str, str]] = []
        for value, host in table.items():
            ok_value = re.fullmatch(pattern, value) is not None
            ok_host = isinstance(host, str) and URL_SAFE_VALUE.match(host) and ".." not in host
            if not ok_value or not ok_host:
                raise ConfigError(f"{where}.{word}.{value}", "must be a value and its host")
            pairs.append((value, host))
        if hosts and {value for value, _ in pairs} != {value for value, _ in hosts[0][1]}:
            raise ConfigError(f"{where}.{word}", "must name the same values as the others")
        hosts.append((word, tuple(pairs)))
    return tuple(hosts)


def check_given_params(
    declared: tuple[ConnectionParam, ...],
    given: Mapping[str, object],
    *,
    fixed: Mapping[str, str],
    partial: bool = False,
) -> dict[str, str]:
    """The ``link`` values of a new connection: ``given`` checked, defaults and the app's
    ``fixed`` values added. With ``partial`` a required value may still be missing (a
    connect link whose page will ask the end user for it).

    Raises:
        InvalidInput: ``params.<name>`` is unknown, not a link parameter, fixed by the app,
            missing while required, or does not match its pattern (never quoting it).
    """
    by_name = {param.name: param for param in declared}
    values: dict[str, str] = {}
    for name in sorted(given):
        param = by_name.get(name)
        if param is None or param.source != "link":
            raise InvalidInput(f"params.{name}", "is not a connection parameter of this provider")
        if name in fixed:
            raise InvalidInput(f"params.{name}", "is fixed by the app's configuration")
        value = given[name]
        if not isinstance(value, str) or not param.accepts(value):
            rule = f" ({param.example!r} for example)" if param.example else ""
            raise InvalidInput(f"params.{name}", f"must be a valid {param.label}{rule}")
        values[name] = value
    for param in declared:
        if param.source != "link" or param.name in values:
            continue
        if param.name in fixed:
            values[param.name] = fixed[param.name]
        elif param.default is not None:
            values[param.name] = param.default
        elif param.required and not partial:
            raise InvalidInput(f"params.{param.name}", f"is required ({param.label})")
    return values


def default_for(param: ConnectionParam, values: Mapping[str, str]) -> str | None:
    """``param``'s default with the ``{name}`` values it names taken from ``values`` (a
    callback parameter's default names link parameters); ``None`` when it has none, a named
    value is missing, or the result does not match the pattern."""
    if param.default is None:
        return None
    missing = False

    def value_of(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match[1])
        missing = missing or value is None
        return value or ""

    filled = _DEFAULT_PLACEHOLDER.sub(value_of, param.default)
    return None if missing or not param.accepts(filled) else filled


def missing_link_params(
    declared: tuple[ConnectionParam, ...], given: Mapping[str, object], *, fixed: Mapping[str, str]
) -> tuple[ConnectionParam, ...]:
    """The required ``link`` parameters that neither ``given``, the app (``fixed``) nor a
    default supply: what a connect page must ask the end user for."""
    return tuple(
        param
        for param in declared
        if param.source == "link"
        and param.required
        and param.name not in given
        and param.name not in fixed
        and param.default is None
    )


def pick(document: object, path: str) -> object:
    """The value at a dotted ``path`` (names and list indexes) in a JSON document, or None."""
    node = document
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


def pick_params(
    declared: tuple[ConnectionParam, ...],
    source: ParamSource,
    document: Mapping[str, Any] | list[Any],
    *,
    provider: str,
    lenient: bool = False,
) -> dict[str, str]:
    """The values of the ``source`` parameters found in ``document``.

    A value that is absent is skipped unless the parameter is required; one that does not
    match its pattern is never kept. With ``lenient`` (a refresh answer: the stored values
    stay), absent and malformed values are skipped, never an error.

    Raises:
        ProviderError: ``invalid_token_response`` for a required value that is missing or
            malformed (named, never quoted).
    """
    values: dict[str, str] = {}
    for param in declared:
        if param.source != source or param.path is None:
            continue
        value = _text(pick(document, param.path))
        if value is not None and param.accepts(value):
            values[param.name] = value
        elif lenient:
            continue
        elif value is not None or param.required:
            what = "a malformed" if value is not None else "no"
            raise ProviderError(
                "invalid_token_response", f"{provider} sent {what} {param.path} ({param.label})"
            )
    return values
