"""Settings of credentials whose access token is minted, not refreshed: parsed and checked.

Three kinds, each a frozen value read from TOML (or a key file) by a parse function that
raises :class:`~oauthvault.errors.ConfigError` naming the key and the rule, never the value:

- :class:`GitHubApp`: a GitHub App's id (its numeric app ID or its client ID, both of
  which GitHub accepts as the JWT ``iss``), its RSA private key, the API base URL
  (``https://api.github.com``, or a GitHub Enterprise Server's ``https://HOST/api/v3``) and
  its slug, which names its install page ``https://github.com/apps/<slug>/installations/new``.
- :class:`ServiceAccount`: a Google service-account key file (``type`` =
  ``"service_account"``, ``client_email``, ``private_key``, ``private_key_id``,
  ``token_uri``), the scopes to ask for and, for domain-wide delegation, the ``subject``
  to act as. :class:`ServiceAccountApp` is the app's side: the scopes, and a key file of
  its own when connections do not bring theirs.
- :class:`TwoStepRequest`: a catalog-described exchange of a customer's credentials for a
  short-lived token (Tableau's personal access token sign-in, Looker's API login): where
  to send what, where the token is in the answer, and how long it lasts.

Pure data and checks; :mod:`oauthvault.oauth.app_tokens` makes the requests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from oauthvault.errors import ConfigError
from oauthvault.providers.tables import TableReader, check_url

__all__ = [
    "GITHUB_API",
    "GOOGLE_TOKEN_URIS",
    "GitHubApp",
    "ServiceAccount",
    "ServiceAccountApp",
    "TwoStepRequest",
    "format_placeholders",
    "load_rsa_key",
    "parse_github_app",
    "parse_service_account",
    "parse_service_account_app",
    "parse_two_step",
]

GITHUB_API = "https://api.github.com"
_GITHUB_INSTALL = "https://github.com/apps/{slug}/installations/new"
#: Token endpoints Google's key files name (the current one, and two older ones still in
#: circulation); a key file naming another is refused unless the app configures it.
GOOGLE_TOKEN_URIS = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    }
)
# A numeric app ID, or a client ID ("Iv1.0123abcd...", "Iv23li...").
_GITHUB_APP_ID = re.compile(r"^(?:[0-9]{1,20}|Iv[0-9A-Za-z._-]{1,60})$")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]{1,200}@[A-Za-z0-9.-]{1,200}$")
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]{0,49})\}")
_MIN_RSA_BITS = 2048
_GITHUB_KEYS = frozenset(
    {"app_id", "private_key", "private_key_file", "api_base_url", "app_slug", "install_url"}
)
_SERVICE_ACCOUNT_APP_KEYS = frozenset(
    {"scopes", "service_account_json", "service_account_file", "token_uri"}
)
_TWO_STEP_KEYS = frozenset(
    {
        "url",
        "method",
        "body",
        "template",
        "basic",
        "token_path",
        "expires_in_path",
        "expires_at_path",
        "lifetime",
        "refused",
    }
)
_MAX_LIFETIME = 366 * 24 * 3600
_BODIES: tuple[Literal["json", "form"], ...] = ("json", "form")
_METHODS: tuple[Literal["POST"], ...] = ("POST",)


def load_rsa_key(pem: str, setting: str) -> RSAKey:
    """An unencrypted PEM RSA private key (PKCS#1 or PKCS#8) of at least 2048 bits.

    Raises:
        ConfigError: naming ``setting``; the key never appears in the error or its chain.
    """
    key: object = None
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm, AttributeError):
        pass  # raised below, outside the handler: no chained exception describes the key
    if key is None:
        raise ConfigError(setting, "is not an unencrypted PEM private key")
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < _MIN_RSA_BITS:
        raise ConfigError(setting, "must be an RSA private key of at least 2048 bits")
    return RSAKey.import_key(key)


def _read_text(path_text: str, setting: str) -> str:
    text = None
    try:
        text = Path(path_text).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        pass  # raised below, outside the handler (a decoding error holds the bytes)
    if text is None:
        raise ConfigError(setting, "cannot be read as a UTF-8 text file")
    return text


def _key_text(reader: TableReader, text_key: str, file_key: str) -> tuple[str, str] | None:
    """The key given inline (``text_key``) or as a file path (``file_key``), and the
    setting that named it; ``None`` when neither is given."""
    if text_key in reader.table and file_key in reader.table:
        raise ConfigError(reader.setting(file_key), f"is given together with {text_key}")
    text = reader.secret(text_key)
    if text is not None:
        return text, reader.setting(text_key)
    path = reader.text(file_key)
    if path is not None:
        return _read_text(path, reader.setting(file_key)), reader.setting(file_key)
    return None


# --- GitHub Apps -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GitHubApp:
    """A GitHub App, as its installation tokens are minted.

    ``app_id`` is the JWT ``iss``: the app's numeric ID or its client ID (GitHub
    recommends the client ID). ``private_key`` is the PEM text of a key generated on the
    app's settings page. ``api_base_url`` has no trailing slash.
    """

    app_id: str
    private_key: str = field(repr=False)
    api_base_url: str = GITHUB_API
    app_slug: str | None = None
    #: The install page when it is not ``https://github.com/apps/<slug>/installations/new``
    #: (a GitHub Enterprise Server host, a test emulator).
    install_url_override: str | None = None

    @property
    def install_url(self) -> str | None:
        """Where a customer installs the app (``None`` without a slug or an override)."""
        if self.install_url_override is not None:
            return self.install_url_override
        if self.app_slug is None:
            return None
        return _GITHUB_INSTALL.format(slug=self.app_slug)


def parse_github_app(table: Mapping[str, object], where: str) -> GitHubApp:
    """The GitHub App settings in ``table`` (the app's configuration, ``where`` its name).

    Keys: ``app_id`` (required), ``private_key`` or ``private_key_file`` (exactly one),
    ``api_base_url`` (https; http only on a loopback host), ``app_slug``, ``install_url``.

    Raises:
        ConfigError: naming the first bad key.
    """
    reader = TableReader(table, where)
    reader.check_keys(_GITHUB_KEYS, ("app_id",))
    app_id = reader.word("app_id") or ""
    if not _GITHUB_APP_ID.match(app_id):
        raise ConfigError(
            reader.setting("app_id"), "must be the app's numeric ID or its client ID (Iv...)"
        )
    key = _key_text(reader, "private_key", "private_key_file")
    if key is None:
        raise ConfigError(reader.setting("private_key"), "or private_key_file is required")
    load_rsa_key(*key)
    api = reader.url("api_base_url", allow_loopback_http=True) or GITHUB_API
    slug = reader.word("app_slug")
    if slug is not None and not _SLUG.match(slug):
        raise ConfigError(reader.setting("app_slug"), "must be the app's URL name (a-z, 0-9 and -)")
    install = reader.url("install_url", allow_loopback_http=True)
    return GitHubApp(app_id, key[0], api.rstrip("/"), slug, install)


# --- Google service accounts -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A Google service account's key and what to ask its token for.

    ``subject`` is the user a domain-wide delegation acts as (the JWT ``sub``), or
    ``None`` for the account itself.
    """

    client_email: str
    private_key: str = field(repr=False)
    private_key_id: str
    token_uri: str
    scopes: tuple[str, ...]
    subject: str | None = None


def _json_text(document: str | bytes, where: str) -> Mapping[str, Any]:
    value: object = None
    try:
        value = json.loads(document)
    except (ValueError, UnicodeError):
        pass  # raised below, outside the handler: the decoder's error holds the text
    if value is None:
        raise ConfigError(where, "is not a JSON key file")
    if not isinstance(value, dict):
        raise ConfigError(where, "is not a JSON key file (an object)")
    return value


def _scopes(scopes: Collection[str], where: str) -> tuple[str, ...]:
    result = tuple(scopes)
    if not result:
        raise ConfigError(where, "must name at least one scope")
    for scope in result:
        if not isinstance(scope, str) or not scope or any(c.isspace() for c in scope):
            raise ConfigError(where, "must be scopes without whitespace")
    return result


def parse_service_account(
    document: str | bytes | Mapping[str, Any],
    *,
    scopes: Collection[str],
    subject: str | None = None,
    where: str = "service_account_json",
    token_uris: Collection[str] = GOOGLE_TOKEN_URIS,
) -> ServiceAccount:
    """A Google service-account key file (its JSON text, or the parsed object), checked.

    ``token_uris`` are the token endpoints a key file may name (Google's, unless the app
    configures another: a test emulator); ``subject`` is the delegation user, if any.

    Raises:
        ConfigError: naming ``<where>.<key>`` (or ``where``, ``scopes``, ``subject``); the
            key file's text never appears in the error or its chain.
    """
    data = document if isinstance(document, Mapping) else _json_text(document, where)
    if data.get("type") != "service_account":
        raise ConfigError(
            f"{where}.type", 'must be "service_account" (the JSON key of a service account)'
        )
    email = data.get("client_email")
    if not isinstance(email, str) or not _EMAIL.match(email):
        raise ConfigError(f"{where}.client_email", "must be the service account's email")
    key_id = data.get("private_key_id")
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise ConfigError(f"{where}.private_key_id", "must be the key's id")
    private_key = data.get("private_key")
    if not isinstance(private_key, str) or not private_key:
        raise ConfigError(f"{where}.private_key", "is required")
    load_rsa_key(private_key, f"{where}.private_key")
    token_uri = data.get("token_uri")
    if not isinstance(token_uri, str):
        raise ConfigError(f"{where}.token_uri", "is required")
    check_url(f"{where}.token_uri", token_uri, allow_loopback_http=True)
    if token_uri not in token_uris:
        raise ConfigError(f"{where}.token_uri", "is not Google's token endpoint")
    subject = subject or None
    if subject is not None and (not isinstance(subject, str) or not _EMAIL.match(subject)):
        raise ConfigError("subject", "must be the email of the user to act as")
    return ServiceAccount(email, private_key, key_id, token_uri, _scopes(scopes, "scopes"), subject)


@dataclass(frozen=True, slots=True)
class ServiceAccountApp:
    """The app's side of service-account connections: the scopes every token asks for,
    the token endpoints a key file may name, and the app's own key file (``None`` when
    each connection brings its own)."""

    scopes: tuple[str, ...]
    token_uris: frozenset[str] = GOOGLE_TOKEN_URIS
    key: ServiceAccount | None = None

    def account(self, key_json: str | None, subject: str | None) -> ServiceAccount:
        """The account a connection's token is minted for: its own key file
        (``key_json``), else the app's, acting as ``subject`` when given.

        Raises:
            ConfigError: the key file is malformed, or there is none.
        """
        if key_json is not None:
            return parse_service_account(
                key_json, scopes=self.scopes, subject=subject, token_uris=self.token_uris
            )
        if self.key is None:
            raise ConfigError("service_account_json", "is required (the app has no key file)")
        subject = subject or None
        if subject is not None and not _EMAIL.match(subject):
            raise ConfigError("subject", "must be the email of the user to act as")
        return ServiceAccount(
            self.key.client_email,
            self.key.private_key,
            self.key.private_key_id,
            self.key.token_uri,
            self.scopes,
            subject,
        )


def parse_service_account_app(table: Mapping[str, object], where: str) -> ServiceAccountApp:
    """The service-account settings in the app's ``table``: ``scopes`` (required),
    ``service_account_json`` or ``service_account_file`` (the app's own key, optional),
    ``token_uri`` (another token endpoint a key file may name: a test emulator; http only
    on a loopback host).

    Raises:
        ConfigError: naming the first bad key.
    """
    reader = TableReader(table, where)
    reader.check_keys(_SERVICE_ACCOUNT_APP_KEYS, ("scopes",))
    scopes = _scopes(reader.words("scopes") or (), reader.setting("scopes"))
    extra = reader.url("token_uri", allow_loopback_http=True)
    token_uris = GOOGLE_TOKEN_URIS | ({extra} if extra else set())
    key_text = _key_text(reader, "service_account_json", "service_account_file")
    key = None
    if key_text is not None:
        key = parse_service_account(
            key_text[0], scopes=scopes, where=key_text[1], token_uris=token_uris
        )
    return ServiceAccountApp(scopes, frozenset(token_uris), key)


# --- two-step token exchanges ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TwoStepRequest:
    """How credentials are exchanged for a short-lived token (``token_request`` in a
    catalog entry).

    ``url`` may hold ``{param}`` and non-secret ``{field}`` placeholders; ``template`` is
    the body (nested tables for ``json``), each string a format of ``{field}`` /
    ``{param}`` placeholders; ``basic`` the formats of an HTTP Basic user name and
    password. The token is at the dotted ``token_path`` of the JSON answer; it lasts the
    seconds at ``expires_in_path``, until the ISO 8601 time at ``expires_at_path``, or,
    when the answer does not say, ``lifetime`` seconds. An answer with a ``refused``
    status means the credentials no longer work.
    """

    url: str
    body: Literal["json", "form"]
    template: Mapping[str, Any]
    token_path: str
    method: Literal["POST"] = "POST"
    basic: tuple[str, str] | None = None
    expires_in_path: str | None = None
    expires_at_path: str | None = None
    lifetime: int | None = None
    refused: tuple[int, ...] = (401, 403)

    def placeholders(self) -> frozenset[str]:
        """Every placeholder name the request uses (pure)."""
        names = set(format_placeholders(self.url))
        for text in (*_strings(self.template), *(self.basic or ())):
            names.update(format_placeholders(text))
        return frozenset(names)


def format_placeholders(text: str) -> list[str]:
    """The ``{name}`` placeholders in a format, in order (pure)."""
    return _PLACEHOLDER.findall(text)


def _strings(template: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for value in template.values():
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            found.extend(_strings(value))
    return found


def _check_format(
    text: str, setting: str, known: Collection[str], secret: Collection[str] = ()
) -> None:
    for name in format_placeholders(text):
        if name not in known:
            raise ConfigError(setting, f"uses {{{name}}}, which is no field or parameter")
        if name in secret:
            raise ConfigError(setting, f"must not carry the secret field {{{name}}}")
    if "{" in _PLACEHOLDER.sub("", text) or "}" in _PLACEHOLDER.sub("", text):
        raise ConfigError(setting, "has a brace that is not a {name} placeholder")


def _template(
    value: object, setting: str, body: str, known: Collection[str], depth: int = 0
) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(setting, "must be a non-empty table")
    result: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{setting}.{key}"
        if isinstance(item, str):
            _check_format(item, where, known)
        elif isinstance(item, dict) and body == "json" and depth < 5:
            item = _template(item, where, body, known, depth + 1)
        elif isinstance(item, (bool, int)) and body == "json":
            pass
        else:
            rule = "a format string or a table" if body == "json" else "a format string"
            raise ConfigError(where, f"must be {rule}")
        result[key] = item
    return result


def _path(reader: TableReader, key: str) -> str | None:
    value = reader.word(key)
    if value is not None and not _PATH.match(value):
        raise ConfigError(reader.setting(key), "must be a dotted path of names (a.b.c)")
    return value


def parse_two_step(
    table: Mapping[str, object],
    where: str,
    *,
    fields: Mapping[str, bool],
    params: Collection[str] = (),
    allow_loopback_http: bool = False,
) -> TwoStepRequest:
    """The ``token_request`` table of a catalog entry.

    ``fields`` maps the entry's credential field names to whether each is secret;
    ``params`` are its connection parameter names. A placeholder must name one of them
    (never both); the URL may not carry a secret field.

    Raises:
        ConfigError: naming ``<where>.<key>``.
    """
    reader = TableReader(table, where)
    reader.check_keys(_TWO_STEP_KEYS, ("url", "body", "template", "token_path"))
    both = sorted(set(fields) & set(params))
    if both:
        raise ConfigError(where, f"{{{both[0]}}} is both a field and a connection parameter")
    known = {*fields, *params}
    secret = {name for name, is_secret in fields.items() if is_secret}
    url = reader.url("url", allow_loopback_http=allow_loopback_http) or ""
    _check_format(url, reader.setting("url"), known, secret)
    method = reader.choice("method", _METHODS) or "POST"
    body = reader.choice("body", _BODIES)
    assert body is not None  # noqa: S101 - required above
    template = _template(table["template"], reader.setting("template"), body, known)
    basic = None
    basic_table = reader.sub_tables("basic")
    if basic_table is not None:
        inner = TableReader(basic_table, reader.setting("basic"))
        inner.check_keys({"username", "password"}, ("username", "password"))
        username, password = inner.secret("username") or "", inner.secret("password") or ""
        _check_format(username, inner.setting("username"), known)
        _check_format(password, inner.setting("password"), known)
        basic = (username, password)
    token_path = _path(reader, "token_path") or ""
    expires_in_path = _path(reader, "expires_in_path")
    expires_at_path = _path(reader, "expires_at_path")
    if expires_in_path is not None and expires_at_path is not None:
        raise ConfigError(reader.setting("expires_at_path"), "goes without expires_in_path")
    lifetime = reader.positive_int("lifetime")
    if lifetime is not None and lifetime > _MAX_LIFETIME:
        raise ConfigError(reader.setting("lifetime"), "must be at most a year, in seconds")
    if lifetime is None and expires_in_path is None and expires_at_path is None:
        raise ConfigError(
            reader.setting("lifetime"),
            "is required when neither expires_in_path nor expires_at_path is given",
        )
    return TwoStepRequest(
        url=url,
        body=body,
        template=template,
        token_path=token_path,
        method=method,
        basic=basic,
        expires_in_path=expires_in_path,
        expires_at_path=expires_at_path,
        lifetime=lifetime,
        refused=_statuses(reader, "refused") or (401, 403),
    )


def _statuses(reader: TableReader, key: str) -> tuple[int, ...] | None:
    value = reader.table.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)
        or not all(400 <= s <= 499 and s != 429 for s in value)
    ):
        raise ConfigError(reader.setting(key), "must be a list of 4xx statuses (not 429)")
    return tuple(value)
