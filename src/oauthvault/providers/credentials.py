"""The catalog of non-OAuth providers: what credential each takes and how it is used.

The data lives in ``credentials.toml`` next to this module (its header comment documents
the schema); :func:`load_credential_catalog` reads and checks it once. Each entry becomes
a :class:`CredentialSpec`: its kind (``auth``), its fields (name, label, secret or not,
pattern, where the end user finds the value), how they are placed on requests (headers,
query parameters, HTTP Basic), the API's base URL, the connection parameters that shape
it, and the optional verification request run when a credential is stored.

Pure: checking given fields, deriving parameters from them and building the request
headers and URLs are functions of their arguments; nothing here fetches anything.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

from oauthvault.errors import ConfigError, InvalidInput
from oauthvault.models import CREDENTIAL_KINDS, CredentialKind, Credentials
from oauthvault.providers.minting import parse_two_step
from oauthvault.providers.params import URL_SAFE_VALUE, ConnectionParam, parse_params
from oauthvault.providers.rate_limits import (
    RateLimitReset,
    read_rate_limit_headers,
    read_rate_limit_reset,
)
from oauthvault.providers.tables import TableReader, catalog_tables, check_url

__all__ = [
    "APP_KINDS",
    "CredentialField",
    "CredentialSpec",
    "DerivedParam",
    "Placement",
    "VerifyRequest",
    "credential_entry",
    "load_credential_catalog",
    "parse_credential_catalog",
]

AppKind = Literal["github_app", "google_service_account"]
APP_KINDS: tuple[AppKind, ...] = ("github_app", "google_service_account")
# The minted token of an ``app`` or ``two_step`` entry, as a placement names it.
ACCESS_TOKEN = "access_token"  # noqa: S105 - a placeholder's name
_ENTRY_KEYS = frozenset(
    """display_name auth api_base_url docs_url notes fields headers query basic verify
    connection_params app token_request revocation rate_limit_headers rate_limit_reset""".split()
)
_REQUIRED = frozenset({"display_name", "auth", "api_base_url", "docs_url", "notes"})
_FIELD_KEYS = frozenset({"name", "label", "secret", "pattern", "help_url", "example", "required"})
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]{0,49})\}")
_VERIFY_KEYS = frozenset({"method", "path", "ok"})
_DERIVED_KEYS = frozenset({"label", "source", "path", "extract", "pattern", "example"})
_REVOCATION_KEYS = frozenset({"method", "path"})


@dataclass(frozen=True, slots=True)
class CredentialField:
    """One field of a credential, as the catalog declares it."""

    name: str
    label: str
    secret: bool
    pattern: str | None = None
    help_url: str | None = None
    example: str | None = None
    required: bool = True

    def accepts(self, value: str) -> bool:
        """True when ``value`` matches the field's pattern (any value without one)."""
        return self.pattern is None or re.fullmatch(self.pattern, value) is not None


@dataclass(frozen=True, slots=True)
class DerivedParam:
    """A connection parameter taken from a field's value (Mailchimp's data centre, the
    end of its API key): group 1 of ``extract`` searched in the field ``field``."""

    name: str
    label: str
    field: str
    extract: str
    pattern: str


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """The request that tells whether a credential works: ``method`` on the API base
    URL + ``path``; ``ok`` is the status meaning valid, 401 and 403 mean refused."""

    method: str
    path: str
    ok: int = 200


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a credential goes on one request: headers and query parameters (the HTTP
    Basic header already encoded). Its values are secrets: never shown."""

    headers: Mapping[str, str] = field(repr=False)
    query: Mapping[str, str] = field(repr=False)
    #: True when a refusal may be cured by a new token (OAuth, app-minted, two-step);
    #: false for a static credential, which only its owner can replace.
    renewable: bool = False


@dataclass(frozen=True, slots=True)
class CredentialSpec:
    """One non-OAuth catalog entry (see the module docstring)."""

    name: str
    display_name: str
    auth: CredentialKind
    fields: tuple[CredentialField, ...]
    api_base_url: str
    docs_url: str
    notes: str
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    basic: tuple[str, str] | None = None
    verify: VerifyRequest | None = None
    revocation: VerifyRequest | None = None
    connection_params: tuple[ConnectionParam, ...] = ()
    derived_params: tuple[DerivedParam, ...] = ()
    app: AppKind | None = None
    #: The ``token_request`` table of a ``two_step`` entry, read by the minting code.
    token_request: Mapping[str, Any] | None = None
    #: The provider's documented rate-limit answer headers, and the one saying when a 429
    #: may be tried again (:mod:`oauthvault.providers.rate_limits`).
    rate_limit_headers: tuple[str, ...] = ()
    rate_limit_reset: RateLimitReset | None = None

    @property
    def constant_headers(self) -> dict[str, str]:
        """The ``[headers]`` without a placeholder (``anthropic-version``): an API version
        rather than the credential, which a proxy caller may replace."""
        return {name: text for name, text in self.headers if not _PLACEHOLDER.search(text)}

    def field(self, name: str) -> CredentialField | None:
        return next((each for each in self.fields if each.name == name), None)

    @property
    def secret_fields(self) -> frozenset[str]:
        return frozenset(each.name for each in self.fields if each.secret)

    @property
    def minted(self) -> bool:
        """True when a token is minted from the fields (``app``, ``two_step``)."""
        return self.auth in ("app", "two_step")

    def check(self, given: Mapping[str, object]) -> Credentials:
        """The fields of a new credential, checked: every required field present, none
        unknown, each matching its pattern; fields placed on requests are one line.

        Raises:
            InvalidInput: naming ``credentials.<field>`` (a value is never quoted).
        """
        if not isinstance(given, Mapping):
            raise InvalidInput("credentials", "must be a mapping of field names to strings")
        for name in sorted(given, key=str):
            if self.field(str(name)) is None:
                raise InvalidInput(f"credentials.{name}", f"is not a field of {self.name}")
        values: dict[str, str] = {}
        placed = self._placed_names()
        for each in self.fields:
            value = given.get(each.name)
            where = f"credentials.{each.name}"
            if value is None or value == "":
                if each.required:
                    raise InvalidInput(where, "is required")
                continue
            if not isinstance(value, str):
                raise InvalidInput(where, f"must be a string, not {type(value).__name__}")
            if each.name in placed and ("\n" in value or "\r" in value):
                raise InvalidInput(where, "must be one line")
            if not each.accepts(value):
                raise InvalidInput(where, f"is not a valid {each.label}")
            values[each.name] = value
        return Credentials(self.auth, values)

    def derive_params(self, credentials: Mapping[str, str]) -> dict[str, str]:
        """The parameters taken from the fields (Mailchimp's data centre).

        Raises:
            InvalidInput: naming the field the value could not be taken from.
        """
        derived: dict[str, str] = {}
        for param in self.derived_params:
            value = credentials.get(param.field, "")
            found = re.search(param.extract, value)
            taken = found.group(1) if found else None
            if not taken or not re.fullmatch(param.pattern, taken):
                raise InvalidInput(
                    f"credentials.{param.field}", f"does not carry a valid {param.label}"
                )
            derived[param.name] = taken
        return derived

    def _placed_names(self) -> set[str]:
        formats = [value for _, value in self.headers + self.query]
        formats += list(self.basic or ())
        return {name for text in formats for name in _PLACEHOLDER.findall(text)}

    def placement(
        self,
        credentials: Mapping[str, str],
        params: Mapping[str, str],
        access_token: str | None = None,
    ) -> Placement:
        """The headers and query parameters that carry the credential on a request to
        the provider's API (``access_token``: the token minted for an ``app`` or
        ``two_step`` connection).

        Raises:
            InvalidInput: a value the placement needs is missing.
        """
        values = {**params, **credentials}
        if access_token is not None:
            values[ACCESS_TOKEN] = access_token
        headers = {name: _format(text, values) for name, text in self.headers}
        if self.basic is not None:
            user, password = (_format(text, values) for text in self.basic)
            pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {pair}"
        query = {name: _format(text, values) for name, text in self.query}
        return Placement(MappingProxyType(headers), MappingProxyType(query), self.minted)

    def url(self, path: str, params: Mapping[str, str], credentials: Mapping[str, str]) -> str:
        """The API base URL joined with ``path``, placeholders filled with connection
        parameters (and non-secret fields). Every value filling the URL is a host-safe word.

        Raises:
            InvalidInput: a value is missing or could move the request to another host.
        """
        public = {k: v for k, v in credentials.items() if k not in self.secret_fields}
        values = {**public, **params}
        for name in _PLACEHOLDER.findall(self.api_base_url + path):
            value = values.get(name)
            if value is not None and (not URL_SAFE_VALUE.match(value) or ".." in value):
                raise InvalidInput(f"params.{name}", "cannot be used in a URL")
        return _format(self.api_base_url, values) + _format(path, values)

    def required_params(self) -> tuple[ConnectionParam, ...]:
        """The link parameters a connection must be given."""
        return tuple(p for p in self.connection_params if p.source == "link" and p.required)


def _format(text: str, values: Mapping[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            raise InvalidInput(f"params.{match.group(1)}", "is required")
        return value

    return _PLACEHOLDER.sub(fill, text)


def _parse_fields(reader: TableReader) -> tuple[CredentialField, ...]:
    items = reader.table.get("fields")
    where = reader.setting("fields")
    if items is None and reader.table.get("auth") == "app":
        return ()  # a GitHub App connection holds only its installation id
    if not isinstance(items, list) or not items:
        raise ConfigError(where, "must be a list of one or more field tables")
    fields: list[CredentialField] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}[{index}]", "must be a table")
        sub = TableReader(item, f"{where}[{index}]")
        sub.check_keys(_FIELD_KEYS, ("name", "label", "secret"))
        name = sub.text("name") or ""
        if not _FIELD_NAME.match(name):
            raise ConfigError(sub.setting("name"), "must be lower-case letters, digits and _")
        if any(each.name == name for each in fields):
            raise ConfigError(sub.setting("name"), "must not repeat another field's")
        pattern = sub.secret("pattern")
        if pattern is not None:
            _compile(sub.setting("pattern"), pattern)
        help_url = _page(sub, "help_url")
        required = sub.boolean("required")
        fields.append(
            CredentialField(
                name=name,
                label=sub.text("label") or name,
                secret=bool(sub.boolean("secret")),
                pattern=pattern,
                help_url=help_url,
                example=sub.text("example"),
                required=True if required is None else required,
            )
        )
    return tuple(fields)


def _page(reader: TableReader, key: str) -> str | None:
    """A documentation page's https URL (a fragment allowed: it names a section)."""
    value = reader.text(key)
    if value is None:
        return None
    check_url(reader.setting(key), value.partition("#")[0], allow_loopback_http=False)
    return value


def _compile(setting: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error:
        raise ConfigError(setting, "is not a valid regular expression") from None


def _parse_formats(reader: TableReader, key: str) -> tuple[tuple[str, str], ...]:
    value = reader.table.get(key)
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise ConfigError(reader.setting(key), "must be a table of names and formats")
    pairs = []
    for name, text in value.items():
        setting = f"{reader.setting(key)}.{name}"
        if not _HEADER_NAME.match(name):
            raise ConfigError(setting, "is not a valid name")
        if not isinstance(text, str) or not text or any(ord(c) < 32 for c in text):
            raise ConfigError(setting, "must be a one-line format")
        pairs.append((name, text))
    return tuple(pairs)


def _parse_basic(reader: TableReader) -> tuple[str, str] | None:
    """The ``basic`` table: username and password formats (either may be empty where
    the provider documents an empty half: Close's password, lemlist's username)."""
    table = reader.table.get("basic")
    if table is None:
        return None
    where = reader.setting("basic")
    if not isinstance(table, dict) or set(table) != {"username", "password"}:
        raise ConfigError(where, "takes username and password formats")
    user, password = table["username"], table["password"]
    for half, text in (("username", user), ("password", password)):
        if not isinstance(text, str) or any(ord(c) < 32 for c in text):
            raise ConfigError(f"{where}.{half}", "must be a one-line format")
    if not (user or password):
        raise ConfigError(where, "needs a username or a password")
    return user, password


def _parse_request(reader: TableReader, key: str, default_ok: int) -> VerifyRequest | None:
    value = reader.table.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(reader.setting(key), "must be a table")
    sub = TableReader(value, reader.setting(key))
    sub.check_keys(_VERIFY_KEYS if key == "verify" else _REVOCATION_KEYS, ("method", "path"))
    method = sub.choice("method", ("GET", "POST", "DELETE", "HEAD"))
    path = sub.text("path") or ""
    if not path.startswith("/") or "//" in path or ".." in path or ("?" in path and "#" in path):
        raise ConfigError(sub.setting("path"), "must be an absolute path")
    ok = sub.positive_int("ok") if key == "verify" else None
    return VerifyRequest(str(method), path, ok or default_ok)


def _split_params(
    reader: TableReader,
) -> tuple[tuple[ConnectionParam, ...], tuple[DerivedParam, ...]]:
    tables = reader.sub_tables("connection_params")
    if tables is None:
        return (), ()
    derived: list[DerivedParam] = []
    others: dict[str, object] = {}
    for name, table in tables.items():
        if isinstance(table, dict) and table.get("source") == "credential":
            sub = TableReader(table, reader.setting(f"connection_params.{name}"))
            sub.check_keys(_DERIVED_KEYS, ("label", "source", "path", "extract", "pattern"))
            extract = sub.secret("extract") or ""
            pattern = sub.secret("pattern") or ""
            _compile(sub.setting("extract"), extract)
            _compile(sub.setting("pattern"), pattern)
            if re.compile(extract).groups < 1:
                raise ConfigError(sub.setting("extract"), "must have a group")
            label = sub.text("label") or name
            derived.append(DerivedParam(name, label, sub.text("path") or "", extract, pattern))
        else:
            others[name] = table
    plain = TableReader({"connection_params": others}, reader.where)
    return parse_params(plain, "connection_params"), tuple(derived)


def parse_credential_entry(name: str, reader: TableReader) -> CredentialSpec:
    """One ``[providers.<name>]`` table of the credential catalog, checked.

    Raises:
        ConfigError: naming the key.
    """
    reader.check_keys(_ENTRY_KEYS, _REQUIRED)
    auth = reader.choice("auth", CREDENTIAL_KINDS)
    assert auth is not None  # noqa: S101 - required above
    fields = _parse_fields(reader)
    params, derived = _split_params(reader)
    base = reader.url("api_base_url", allow_loopback_http=False) or ""
    if base.endswith("/"):
        raise ConfigError(reader.setting("api_base_url"), "must not end with /")
    basic = _parse_basic(reader)
    app = reader.choice("app", APP_KINDS)
    token_request = reader.table.get("token_request")
    if token_request is not None and not isinstance(token_request, dict):
        raise ConfigError(reader.setting("token_request"), "must be a table")
    rate_limit_headers = read_rate_limit_headers(reader)
    spec = CredentialSpec(
        name=name,
        display_name=reader.text("display_name") or name,
        auth=auth,
        fields=fields,
        api_base_url=base,
        docs_url=_page(reader, "docs_url") or "",
        notes=reader.text("notes") or "",
        headers=_parse_formats(reader, "headers"),
        query=_parse_formats(reader, "query"),
        basic=basic,
        verify=_parse_request(reader, "verify", 200),
        revocation=_parse_request(reader, "revocation", 204),
        connection_params=params,
        derived_params=derived,
        app=app,
        token_request=MappingProxyType(token_request) if token_request is not None else None,
        rate_limit_headers=rate_limit_headers or (),
        rate_limit_reset=read_rate_limit_reset(reader, rate_limit_headers),
    )
    _check_entry(spec, reader)
    return spec


def _check_entry(spec: CredentialSpec, reader: TableReader) -> None:
    names = {each.name for each in spec.fields}
    params = {p.name for p in spec.connection_params} | {d.name for d in spec.derived_params}
    secret = spec.secret_fields
    if spec.auth == "api_key" and (len(spec.fields) != 1 or not spec.fields[0].secret):
        raise ConfigError(reader.setting("fields"), "an api_key entry has one secret field")
    if spec.auth == "basic" and spec.basic is None:
        raise ConfigError(reader.setting("basic"), "is required for auth = 'basic'")
    if spec.auth == "fields" and len(spec.fields) < 2:
        raise ConfigError(reader.setting("fields"), "auth = 'fields' has two or more fields")
    if spec.auth == "app" and spec.app is None:
        raise ConfigError(reader.setting("app"), "is required for auth = 'app'")
    if spec.auth == "two_step" and spec.token_request is None:
        raise ConfigError(reader.setting("token_request"), "is required for auth = 'two_step'")
    if not (spec.headers or spec.query or spec.basic):
        raise ConfigError(reader.setting("headers"), "an entry places its credential somewhere")
    minted = {ACCESS_TOKEN} if spec.minted else set()
    if minted & names:
        raise ConfigError(reader.setting("fields"), "access_token names the minted token here")
    for key, texts in (
        ("headers", [text for _, text in spec.headers]),
        ("query", [text for _, text in spec.query]),
        ("basic", list(spec.basic or ())),
    ):
        for text in texts:
            for name in _PLACEHOLDER.findall(text):
                if name not in names | params | minted:
                    raise ConfigError(reader.setting(key), f"uses {{{name}}}, not a field")
    urls = [("api_base_url", spec.api_base_url)]
    urls += [("verify.path", spec.verify.path)] if spec.verify else []
    urls += [("revocation.path", spec.revocation.path)] if spec.revocation else []
    for key, text in urls:
        for name in _PLACEHOLDER.findall(text):
            if name in secret:
                raise ConfigError(reader.setting(key), f"must not hold the secret {{{name}}}")
            if name not in names | params:
                raise ConfigError(reader.setting(key), f"uses {{{name}}}, not a parameter")
            param = next((p for p in spec.connection_params if p.name == name), None)
            if param is not None and param.pattern is None:
                raise ConfigError(reader.setting(key), f"uses {{{name}}}, which needs a pattern")
    if spec.token_request is not None:
        parse_two_step(
            spec.token_request,
            reader.setting("token_request"),
            fields={each.name: each.secret for each in spec.fields},
            params=[param.name for param in spec.connection_params],
        )
    for each in spec.derived_params:
        if each.field not in names:
            raise ConfigError(reader.setting("connection_params"), f"{each.name}: no such field")


def parse_credential_catalog(
    text: str, *, source: str = "credentials.toml"
) -> dict[str, CredentialSpec]:
    """Parse and check a credential catalog document (``schema_version = 1``).

    Raises:
        ConfigError: ``<source>: providers.<name>.<key>`` for the first problem found.
    """
    tables = catalog_tables(text, source)
    specs: dict[str, CredentialSpec] = {}
    for name, table in tables.items():
        where = f"{source}: providers.{name}"
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,49}", name):
            raise ConfigError(where, "names are lower-case letters, digits and -")
        if not isinstance(table, dict):
            raise ConfigError(where, "must be a table")
        specs[name] = parse_credential_entry(name, TableReader(table, where))
    return specs


@functools.cache
def _catalog() -> Mapping[str, CredentialSpec]:
    files = resources.files("oauthvault.providers")
    text = files.joinpath("credentials.toml").read_text("utf-8")
    return MappingProxyType(parse_credential_catalog(text))


def credential_entry(name: str) -> CredentialSpec | None:
    """The packaged catalog's entry ``name`` (``None``: no such entry), without copying the
    catalog: the lookup every request makes.

    Raises:
        ConfigError: the packaged catalog is broken.
    """
    return _catalog().get(name)


def load_credential_catalog() -> dict[str, CredentialSpec]:
    """Every non-OAuth provider of the packaged catalog, by name (parsed once).

    Raises:
        ConfigError: the packaged catalog is broken, naming the provider and key.
    """
    return dict(_catalog())


def check_base_url(setting: str, url: str) -> str:
    """An app's own ``api_base_url`` (a corporate gateway, a test double): https, or http
    on loopback."""
    return check_url(setting, url, allow_loopback_http=True)
