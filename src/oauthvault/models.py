"""The values the vault stores and hands out: connection keys, token sets, what may be
shown of a stored connection, its status and the events about it.

All are frozen. A :class:`TokenSet` keeps its tokens out of ``repr`` and ``str``.
Validation lives here so that nothing invalid ever reaches storage or the cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from oauthvault.errors import InvalidInput

__all__ = [
    "MAX_SCOPE_LENGTH",
    "MAX_TOKEN_LENGTH",
    "NO_PARAMS",
    "ClientCredentials",
    "ConnectionEvent",
    "ConnectionQuery",
    "ConnectionStatus",
    "CredentialKind",
    "Credentials",
    "StoredConnection",
    "TokenKey",
    "TokenSet",
]

MAX_PROVIDER_LENGTH = 50
MAX_WORKSPACE_ID_LENGTH = 255
MAX_ACTOR_ID_LENGTH = 255
# Real tokens are a few kilobytes at most (large JWTs from Microsoft run ~4 KiB). Access and
# refresh tokens are measured in UTF-8 bytes: 16 KiB, whatever characters they hold.
MAX_TOKEN_LENGTH = 16_384
MAX_SCOPE_LENGTH = 8_192
# A token whose whole lifetime is short next to ``min_ttl`` is refreshed in this last
# fraction of it (see TokenSet.needed_ttl and TokenSet.lasts).
SHORT_LIFETIME_MARGIN = 0.25
# Ten years: anything longer is a unit mistake (milliseconds passed as seconds).
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600

# C0 and C1 controls, DEL, and lone surrogates (which cannot be stored as UTF-8).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")


def _check_text(
    argument: str, value: object, max_length: int, *, secret: bool, in_bytes: bool = False
) -> str:
    """Return ``value`` if it is a usable non-empty string, else raise :class:`InvalidInput`.

    ``max_length`` counts characters, or with ``in_bytes`` the octets of its UTF-8 form.

    The message never quotes ``value``: for tokens it is a secret, for ids it may be huge.
    """
    if not isinstance(value, str):
        raise InvalidInput(argument, f"must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidInput(argument, "must not be empty")
    if len(value) > max_length:
        raise InvalidInput(argument, f"is longer than {max_length} characters")
    # A lone surrogate is counted here and refused just below.
    if in_bytes and len(value.encode("utf-8", "surrogatepass")) > max_length:
        raise InvalidInput(argument, f"is longer than {max_length} bytes (UTF-8)")
    if _FORBIDDEN.search(value):
        kind = "control characters" if secret else "control characters or lone surrogates"
        raise InvalidInput(argument, f"must not contain {kind}")
    return value


@dataclass(frozen=True, slots=True)
class TokenKey:
    """Identifies one connection: a provider account of one actor in one workspace.

    Ids are exact strings: no case folding, trimming or normalization.

    Raises:
        InvalidInput: an id is not a string, empty, too long or holds control characters.
    """

    provider: str
    workspace_id: str
    actor_id: str

    def __post_init__(self) -> None:
        provider, workspace_id, actor_id = self.provider, self.workspace_id, self.actor_id
        # Fast path for the common valid case (this runs on every call); the slow path
        # below finds which id is wrong and why.
        if (
            type(provider) is str
            and type(workspace_id) is str
            and type(actor_id) is str
            and 0 < len(provider) <= MAX_PROVIDER_LENGTH
            and 0 < len(workspace_id) <= MAX_WORKSPACE_ID_LENGTH
            and 0 < len(actor_id) <= MAX_ACTOR_ID_LENGTH
        ):
            joined = f"{provider} {workspace_id} {actor_id}"
            # isprintable() is C-fast and rejects every control character; the regex decides
            # only for the rare ids with other non-printables (e.g. non-breaking spaces).
            if joined.isprintable() or not _FORBIDDEN.search(joined):
                return
        _check_text("provider", provider, MAX_PROVIDER_LENGTH, secret=False)
        _check_text("workspace_id", workspace_id, MAX_WORKSPACE_ID_LENGTH, secret=False)
        _check_text("actor_id", actor_id, MAX_ACTOR_ID_LENGTH, secret=False)


_TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at", "scope")


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What a client-credentials connection renews its token with: a customer's own client
    id and secret, or ``None`` for both to use the configured app's."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


CredentialKind = Literal["api_key", "basic", "fields", "app", "two_step"]
#: Kinds whose fields are used as they are: nothing is minted, nothing expires.
STATIC_KINDS: frozenset[str] = frozenset({"api_key", "basic", "fields"})
#: Kinds whose fields mint a short-lived token, renewed like a refresh.
MINTED_KINDS: frozenset[str] = frozenset({"app", "two_step"})
CREDENTIAL_KINDS: tuple[CredentialKind, ...] = ("api_key", "basic", "fields", "app", "two_step")
MAX_CREDENTIAL_FIELDS = 16
# A Google service-account key file is about 2.4 KiB; 32 KiB leaves room for any key.
MAX_CREDENTIAL_LENGTH = 32_768
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
# Values may span lines (a key file, a PEM key); other control characters are refused.
_FORBIDDEN_IN_FIELD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class Credentials(Mapping[str, str]):
    """A non-OAuth credential's named fields (an API key; a username and password; an
    application id and key; a service account's key file), as a read-only mapping.

    ``kind`` says what they are (:data:`CredentialKind`). Values are never shown:
    ``repr`` and ``str`` list the field names only.

    Raises:
        InvalidInput: a name or value breaks a rule (values are never quoted).
    """

    __slots__ = ("_values", "kind")

    def __init__(self, kind: str, values: Mapping[str, str]) -> None:
        if kind not in CREDENTIAL_KINDS:
            raise InvalidInput("kind", f"must be one of {', '.join(CREDENTIAL_KINDS)}")
        if not isinstance(values, Mapping):
            raise InvalidInput("credentials", "must be a mapping of field names to strings")
        if len(values) > MAX_CREDENTIAL_FIELDS:
            raise InvalidInput("credentials", f"must hold at most {MAX_CREDENTIAL_FIELDS} fields")
        for name, value in values.items():
            if not isinstance(name, str) or not _FIELD_NAME.match(name):
                raise InvalidInput(
                    "credentials", "field names are lower-case letters, digits and _"
                )
            where = f"credentials.{name}"
            if not isinstance(value, str):
                raise InvalidInput(where, f"must be a string, not {type(value).__name__}")
            if not value:
                raise InvalidInput(where, "must not be empty")
            if len(value) > MAX_CREDENTIAL_LENGTH:
                raise InvalidInput(where, f"is longer than {MAX_CREDENTIAL_LENGTH} characters")
            if _FORBIDDEN_IN_FIELD.search(value):
                raise InvalidInput(where, "must not contain control characters")
        self.kind: CredentialKind = kind
        self._values: Mapping[str, str] = MappingProxyType(dict(values))

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return self.kind == other.kind and dict(self._values) == dict(other._values)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Credentials(kind={self.kind!r}, fields={sorted(self._values)!r})"

    __str__ = __repr__

    @property
    def static(self) -> bool:
        """True when the fields are used as they are (no token is minted from them)."""
        return self.kind in STATIC_KINDS


#: The connection parameters of a connection that has none.
NO_PARAMS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TokenSet(Mapping[str, object]):
    """The tokens of one connection, as a read-only mapping.

    ``tokens["access_token"]``, ``["refresh_token"]``, ``["expires_at"]`` (timezone-aware
    ``datetime`` or ``None`` when the provider gave no lifetime) and ``["scope"]`` work as
    in the seed design; attributes of the same names do too. ``params`` holds the
    connection's parameters (a Shopify shop, a Salesforce ``instance_url``, a QuickBooks
    ``realm_id``: see the provider catalog); they are not secrets, and not part of the
    mapping.
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    scope: str | None
    params: Mapping[str, str] = field(default_factory=lambda: NO_PARAMS)
    #: Set on client-credentials connections (they have no refresh token).
    client_credentials: ClientCredentials | None = field(default=None, repr=False)
    #: When the access token was obtained (``None``: not known); with ``expires_at`` it
    #: gives the provider's lifetime, which :meth:`needed_ttl` uses.
    issued_at: datetime | None = field(default=None, compare=False)
    #: The version of the stored row these tokens were read from (0: not from a row). It
    #: only grows, across every write and process: newer tokens have a larger one.
    version: int = field(default=0, compare=False)
    #: Set on a non-OAuth connection: its fields. For the static kinds (``api_key``,
    #: ``basic``, ``fields``) ``access_token`` is empty; for ``app`` and ``two_step`` it is
    #: the token last minted from them.
    credentials: Credentials | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> object:
        if name not in _TOKEN_FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(_TOKEN_FIELDS)

    def __len__(self) -> int:
        return len(_TOKEN_FIELDS)

    def seconds_left(self, now: datetime) -> float | None:
        """Seconds until the access token expires (negative once it has), or ``None``."""
        if self.expires_at is None:
            return None
        return (self.expires_at - now).total_seconds()

    def lifetime(self) -> float | None:
        """The access token's whole lifetime in seconds, when both ends are known."""
        if self.expires_at is None or self.issued_at is None:
            return None
        return (self.expires_at - self.issued_at).total_seconds()

    def needed_ttl(self, min_ttl: float) -> float:
        """The seconds this token must have left to count as fresh for a caller asking
        ``min_ttl``: ``min_ttl`` itself, except for a provider whose tokens live less than
        four times ``min_ttl``; then a token counts as fresh until its last quarter (so steady
        calls make at most one grant per three quarters of a lifetime, never one per call).
        """
        lifetime = self.lifetime()
        if lifetime is None or lifetime <= 0:
            return min_ttl
        return min(min_ttl, lifetime * SHORT_LIFETIME_MARGIN)

    def lasts(self, min_ttl: float, now: datetime) -> bool:
        """Whether the access token is fresh enough at ``now`` for a caller asking
        ``min_ttl`` seconds: at least :meth:`needed_ttl` seconds are left (``min_ttl``, or
        less for tokens that live under four times ``min_ttl``). Always true for a token
        without an expiry. This is the one "fresh enough?" rule of every read and refresh."""
        expires_at = self.expires_at
        if expires_at is None:
            return True
        left = (expires_at - now).total_seconds()
        # The common case first: as much left as asked (needed_ttl never asks for more).
        return left >= min_ttl or left >= self.needed_ttl(min_ttl)

    def has_left(self, seconds: float, now: datetime) -> bool:
        """Whether the access token stays valid for at least ``seconds`` more at ``now``
        (always true without an expiry): the plain test, without the allowance
        :meth:`lasts` makes for short-lived tokens."""
        expires_at = self.expires_at
        return expires_at is None or (expires_at - now).total_seconds() >= seconds


_new_token_set = object.__new__
_slot_setters = {each.name: getattr(TokenSet, each.name).__set__ for each in fields(TokenSet)}
_set_access_token = _slot_setters["access_token"]
_set_refresh_token = _slot_setters["refresh_token"]
_set_expires_at = _slot_setters["expires_at"]
_set_scope = _slot_setters["scope"]
_set_params = _slot_setters["params"]
_set_client_credentials = _slot_setters["client_credentials"]
_set_issued_at = _slot_setters["issued_at"]
_set_version = _slot_setters["version"]
_set_credentials = _slot_setters["credentials"]


def assemble_token_set(
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
    scope: str | None,
    params: Mapping[str, str],
    client_credentials: ClientCredentials | None,
    issued_at: datetime | None,
    version: int,
    credentials: Credentials | None = None,
) -> TokenSet:
    """``TokenSet(...)`` with every field given, in field order, built through the slots
    directly: half the time of the frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field). Every read of a cached record builds one."""
    tokens: TokenSet = _new_token_set(TokenSet)
    _set_access_token(tokens, access_token)
    _set_refresh_token(tokens, refresh_token)
    _set_expires_at(tokens, expires_at)
    _set_scope(tokens, scope)
    _set_params(tokens, params)
    _set_client_credentials(tokens, client_credentials)
    _set_issued_at(tokens, issued_at)
    _set_version(tokens, version)
    _set_credentials(tokens, credentials)
    return tokens


class ConnectionStatus(StrEnum):
    """Where a connection stands: usable, refresh failing for now, the user must connect
    again, or its stored tokens do not decrypt with the configured keys (a key missing
    from ``OAUTH_ENCRYPTION_KEY``, or a row altered: restore the key, or connect again)."""

    ACTIVE = "active"
    DEGRADED = "degraded"
    NEEDS_REAUTH = "needs_reauth"
    UNDECRYPTABLE = "undecryptable"


@dataclass(frozen=True, slots=True)
class StoredConnection:
    """What may be shown about a stored connection: everything but its tokens."""

    provider: str
    workspace_id: str
    actor_id: str
    expires_at: datetime | None
    scope: str | None
    has_refresh_token: bool
    key_id: str
    updated_at: datetime
    status: str = ConnectionStatus.ACTIVE.value
    last_refreshed_at: datetime | None = None
    last_error: str | None = None
    params: Mapping[str, str] = field(default_factory=lambda: NO_PARAMS)

    @property
    def key(self) -> TokenKey:
        return TokenKey(self.provider, self.workspace_id, self.actor_id)


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A change worth telling the application about: ``refreshed``; a status change;
    ``refresh_abandoned`` (a refresh's lease ran out without its result being saved: the
    stored refresh token may have been used, so the next refresh may need a reconnect);
    ``refresh_lost`` (this process got new tokens but could not save them in time)."""

    kind: Literal["refreshed", "status_changed", "refresh_abandoned", "refresh_lost"]
    provider: str
    workspace_id: str
    actor_id: str
    status: str
    previous_status: str | None
    error: str | None
    at: datetime


def validate_scope(scope: object) -> None:
    """Check a ``scope`` argument (``None`` allowed).

    Raises:
        InvalidInput: naming ``scope``.
    """
    if scope is not None:
        if not isinstance(scope, str):
            raise InvalidInput("scope", f"must be a string, not {type(scope).__name__}")
        if len(scope) > MAX_SCOPE_LENGTH:
            raise InvalidInput("scope", f"is longer than {MAX_SCOPE_LENGTH} characters")
        if _FORBIDDEN.search(scope):
            raise InvalidInput("scope", "must not contain control characters")


def validate_client_credentials(client_id: object, client_secret: object) -> None:
    """Check a customer's client id and secret (secret values are never quoted).

    Raises:
        InvalidInput: naming ``client_id`` or ``client_secret``.
    """
    _check_text("client_id", client_id, MAX_TOKEN_LENGTH, secret=True)
    _check_text("client_secret", client_secret, MAX_TOKEN_LENGTH, secret=True)


def validate_filter(provider: object, workspace_id: object, actor_id: object = None) -> None:
    """Check the optional ids of a listing's filter, as ids are checked.

    Raises:
        InvalidInput: naming the argument.
    """
    if provider is not None:
        _check_text("provider", provider, MAX_PROVIDER_LENGTH, secret=False)
    if workspace_id is not None:
        _check_text("workspace_id", workspace_id, MAX_WORKSPACE_ID_LENGTH, secret=False)
    if actor_id is not None:
        _check_text("actor_id", actor_id, MAX_ACTOR_ID_LENGTH, secret=False)


MAX_LISTING = 100_000


@dataclass(frozen=True, slots=True)
class ConnectionQuery:
    """Which stored connections a listing returns: each filter optional (``status`` one of
    :class:`ConnectionStatus`), sorted by (provider, workspace, actor), the page starting
    after ``after`` (the last connection of the page before), at most ``limit``.

    Raises:
        InvalidInput: naming the field.
    """

    provider: str | None = None
    workspace_id: str | None = None
    actor_id: str | None = None
    status: str | None = None
    after: TokenKey | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        validate_filter(self.provider, self.workspace_id, self.actor_id)
        if self.status is not None and self.status not in set(ConnectionStatus):
            raise InvalidInput("status", f"must be one of {', '.join(ConnectionStatus)}")
        if self.after is not None and not isinstance(self.after, TokenKey):
            raise InvalidInput("after", "must be a TokenKey")
        limit = self.limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LISTING:
            raise InvalidInput("limit", f"must be from 1 to {MAX_LISTING}")

    def params(self) -> dict[str, object]:
        """The query's values by name, for the storage backends' SQL."""
        after = self.after
        return {
            "provider": self.provider,
            "workspace_id": self.workspace_id,
            "actor_id": self.actor_id,
            "status": self.status,
            "after_provider": after.provider if after else "",
            "after_workspace_id": after.workspace_id if after else "",
            "after_actor_id": after.actor_id if after else "",
            "limit": self.limit,
        }


def validate_tokens(
    access_token: object,
    refresh_token: object,
    expires_in: object,
    scope: object,
) -> None:
    """Check the token half of a ``store_tokens`` call: each token at most 16 KiB of UTF-8.

    Raises:
        InvalidInput: naming the argument; token values are never quoted.
    """
    _check_text("access_token", access_token, MAX_TOKEN_LENGTH, secret=True, in_bytes=True)
    if refresh_token is not None:
        _check_text("refresh_token", refresh_token, MAX_TOKEN_LENGTH, secret=True, in_bytes=True)
    validate_scope(scope)
    if expires_in is not None:
        # bool is an int subclass; True seconds is never what a caller meant.
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise InvalidInput("expires_in", "must be an integer number of seconds")
        if expires_in < 0:
            raise InvalidInput("expires_in", "must not be negative")
        if expires_in > MAX_EXPIRES_IN:
            raise InvalidInput("expires_in", f"must be at most {MAX_EXPIRES_IN} seconds")


def encode_params(params: Mapping[str, str]) -> str | None:
    """Connection parameters as stored (JSON text), ``None`` when there are none."""
    return json.dumps(dict(sorted(params.items())), separators=(",", ":")) if params else None


def decode_params(text: str | None) -> Mapping[str, str]:
    """The stored form back; anything that is not a JSON object of strings reads as none."""
    if not text:
        return NO_PARAMS
    try:
        value = json.loads(text)
    except ValueError:
        return NO_PARAMS
    if not isinstance(value, dict):
        return NO_PARAMS
    return MappingProxyType({k: v for k, v in value.items() if isinstance(v, str)})


MAX_PARAMS = 32
MAX_RESPONSE_LENGTH = 65_536


def validate_params(params: object) -> Mapping[str, str]:
    """Check the ``params`` of a ``store_tokens`` call: a mapping of short names to
    short printable strings.

    Raises:
        InvalidInput: naming ``params`` or ``params.<name>``.
    """
    if params is None:
        return NO_PARAMS
    if not isinstance(params, Mapping):
        raise InvalidInput("params", "must be a mapping of names to strings")
    if len(params) > MAX_PARAMS:
        raise InvalidInput("params", f"must hold at most {MAX_PARAMS} values")
    for name, value in params.items():
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise InvalidInput("params", "names are letters, digits and _, at most 50")
        _check_text(f"params.{name}", value, 512, secret=False)
    return MappingProxyType(dict(params)) if params else NO_PARAMS


def validate_response(response: object) -> Mapping[str, object] | None:
    """Check the ``token_response`` of a ``store_tokens`` call: a JSON object.

    Raises:
        InvalidInput: it is not a JSON-serializable object, or is too large.
    """
    if response is None:
        return None
    if not isinstance(response, Mapping):
        raise InvalidInput("token_response", "must be a mapping (the provider's JSON answer)")
    try:
        text = json.dumps(dict(response))
    except (TypeError, ValueError):
        raise InvalidInput("token_response", "must be JSON-serializable") from None
    if len(text) > MAX_RESPONSE_LENGTH:
        raise InvalidInput("token_response", f"is longer than {MAX_RESPONSE_LENGTH} characters")
    return response
