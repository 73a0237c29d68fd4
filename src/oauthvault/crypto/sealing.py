"""Turning a :class:`TokenSet` into what the database and the cache hold, and back.

Pure functions, no I/O. Every ciphertext is bound by its associated data to the
connection it belongs to and to its purpose, so a value copied to another row, another
field or another cache key fails to decrypt instead of handing out someone else's token.
A row's access token is also bound to the values handed out with it (expiry, scope,
connection parameters, when it was obtained), which the row keeps in plain columns: a
changed value fails to decrypt instead of sending the token to another host.
"""

from __future__ import annotations

import binascii
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from oauthvault.crypto.envelope import RAW_KEY_VERSION, open_sealed, seal
from oauthvault.crypto.keyring import KeyRing, Purpose
from oauthvault.errors import DecryptionError
from oauthvault.models import (
    NO_PARAMS,
    ClientCredentials,
    Credentials,
    TokenKey,
    TokenSet,
    assemble_token_set,
    decode_params,
    encode_params,
)

__all__ = [
    "LocalRecord",
    "SealedRow",
    "associated_data",
    "open_cache_record",
    "open_local_record",
    "open_response",
    "open_row",
    "seal_cache_record",
    "seal_local_record",
    "seal_row",
]

ACCESS_FIELD = "access_token"  # rows sealed before the four below: nothing else bound
# The access token's purpose also says whether the row holds a refresh token, so a refresh
# ciphertext removed (or put back) by hand fails to decrypt instead of reading as "none".
# Rows sealed before the row binding below: read, never written.
ACCESS_WITH_REFRESH = "access_token+refresh"
ACCESS_ALONE = "access_token-refresh"
# Rows sealed now: the associated data also holds the row's plain values (_row_values).
ACCESS_BOUND_WITH_REFRESH = "access_token+refresh+row"
ACCESS_BOUND_ALONE = "access_token-refresh+row"
REFRESH_FIELD = "refresh_token"
CACHE_FIELD = "cache_record"
RESPONSE_FIELD = "token_response"
LOCAL_FIELD = "local_record"
_DOMAIN = b"oauthvault/v1"
_SEPARATOR = "\x1f"  # control characters are rejected in tokens and scope, so this is free
_ROW: Purpose = "token-row"  # the subkey of every column of a row (its fields differ by their AAD)


@dataclass(frozen=True, slots=True)
class SealedRow:
    """One ``oauth_tokens`` row as stored: ciphertexts are base64 text; ``params`` is the
    connection parameters' JSON text (not secret); ``response_encrypted`` the provider's
    whole last token answer, sealed (it may hold an id_token or other secrets)."""

    access_token_encrypted: str = field(repr=False)
    refresh_token_encrypted: str | None = field(repr=False)
    key_id: str
    expires_at: datetime | None
    scope: str | None
    params: str | None = None
    response_encrypted: str | None = field(default=None, repr=False)
    #: When the access token was obtained (``TokenSet.issued_at``).
    issued_at: datetime | None = None
    #: The row's version as read (0 for a row not read from the database).
    version: int = 0


@functools.lru_cache(maxsize=16_384)  # the hot path's connections; each entry is small
def associated_data(key: TokenKey, purpose: str) -> bytes:
    """(provider, workspace_id, actor_id, purpose) joined by NUL: unambiguous, because
    :class:`TokenKey` rejects control characters (NUL included) in every id."""
    return _joined(key.provider, key.workspace_id, key.actor_id, purpose)


@functools.lru_cache(maxsize=16_384)
def _local_associated_data(ids: tuple[str, str, str]) -> bytes:
    # The local cache is keyed by the ids of a validated TokenKey, without building one.
    return _joined(*ids, LOCAL_FIELD)


def _joined(provider: str, workspace_id: str, actor_id: str, purpose: str) -> bytes:
    return _DOMAIN + f"\x00{provider}\x00{workspace_id}\x00{actor_id}\x00{purpose}".encode()


def _to_text(sealed: bytes) -> str:
    return binascii.b2a_base64(sealed, newline=False).decode("ascii")


def _from_text(text: str) -> bytes:
    # binascii directly: base64.urlsafe_b64decode costs a translate and several calls.
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise DecryptionError from None


# The refresh-token field of a client-credentials connection holds its credentials instead
# (sealed the same way), marked by a prefix no provider's refresh token starts with; that
# of a non-OAuth connection holds its credential's kind and fields, with a mark of its own.
_CREDENTIALS_MARK = "\x1eoauthvault-client-credentials:"
_FIELDS_MARK = "\x1eoauthvault-credentials:"
_MARKS = (_CREDENTIALS_MARK, _FIELDS_MARK)

RefreshField = tuple[str | None, ClientCredentials | None, Credentials | None]


def _refresh_field(tokens: TokenSet) -> str | None:
    fields = tokens.credentials
    if fields is not None:
        kept = {"kind": fields.kind, "fields": dict(fields)}
        return _FIELDS_MARK + json.dumps(kept, separators=(",", ":"))
    credentials = tokens.client_credentials
    if credentials is None:
        return tokens.refresh_token
    value = {"client_id": credentials.client_id, "client_secret": credentials.client_secret}
    return _CREDENTIALS_MARK + json.dumps(value, separators=(",", ":"))


def _split_refresh(text: str | None) -> RefreshField:
    """The refresh field read back: a refresh token, a client's credentials, or a
    non-OAuth credential."""
    if text is None or not text.startswith(_MARKS):
        return text, None, None
    try:
        if text.startswith(_FIELDS_MARK):
            value = json.loads(text[len(_FIELDS_MARK) :])
            return None, None, Credentials(value["kind"], value["fields"])
        value = json.loads(text[len(_CREDENTIALS_MARK) :])
        return None, ClientCredentials(value["client_id"], value["client_secret"]), None
    except (ValueError, KeyError, TypeError):
        # InvalidInput is a ValueError: an authenticated but malformed value.
        raise DecryptionError from None


def seal_row(
    keyring: KeyRing,
    key: TokenKey,
    tokens: TokenSet,
    response: Mapping[str, Any] | None = None,
) -> SealedRow:
    """Encrypt both tokens (and the token ``response``) with the newest key, each bound to
    its row and field."""
    refresh_text = _refresh_field(tokens)
    purpose = ACCESS_BOUND_ALONE if refresh_text is None else ACCESS_BOUND_WITH_REFRESH
    params = encode_params(tokens.params)
    bound = associated_data(key, purpose) + _row_values(
        tokens.expires_at, tokens.scope, params, tokens.issued_at
    )
    access = seal(keyring, tokens.access_token.encode(), bound, _ROW)
    refresh = None
    if refresh_text is not None:
        refresh = _to_text(
            seal(keyring, refresh_text.encode(), associated_data(key, REFRESH_FIELD), _ROW)
        )
    sealed_response = None
    if response is not None:
        plaintext = json.dumps(response, separators=(",", ":")).encode()
        sealed_response = _to_text(
            seal(keyring, plaintext, associated_data(key, RESPONSE_FIELD), _ROW)
        )
    return SealedRow(
        access_token_encrypted=_to_text(access),
        refresh_token_encrypted=refresh,
        key_id=keyring.primary.key_id_hex,
        expires_at=tokens.expires_at,
        scope=tokens.scope,
        params=params,
        response_encrypted=sealed_response,
        issued_at=tokens.issued_at,
    )


def open_response(keyring: KeyRing, key: TokenKey, row: SealedRow) -> dict[str, Any] | None:
    """The provider's last token answer kept in ``row``, or ``None`` when none was kept.

    Raises:
        DecryptionError: it was sealed for another connection, with an unknown key, or
            was altered.
    """
    if row.response_encrypted is None:
        return None
    plaintext = open_sealed(
        keyring, _from_text(row.response_encrypted), associated_data(key, RESPONSE_FIELD), _ROW
    )
    try:
        value = json.loads(plaintext)
    except ValueError:
        raise DecryptionError from None
    if not isinstance(value, dict):
        raise DecryptionError
    return value


def open_row(keyring: KeyRing, key: TokenKey, row: SealedRow) -> TokenSet:
    """Decrypt a stored row of connection ``key``.

    Raises:
        DecryptionError: the row was sealed for another connection, with an unknown key,
            or was altered.
    """
    sealed_access = _from_text(row.access_token_encrypted)
    alone = row.refresh_token_encrypted is None
    bound = associated_data(key, ACCESS_BOUND_ALONE if alone else ACCESS_BOUND_WITH_REFRESH)
    try:
        access = open_sealed(
            keyring,
            sealed_access,
            bound + _row_values(row.expires_at, row.scope, row.params, row.issued_at),
            _ROW,
        )
    except DecryptionError:
        # A row sealed by an earlier version (re-bound when it is next sealed: a store, a
        # refresh, rotate-key). A bound row whose values or refresh column were changed
        # fails here too: its purpose is none of these.
        access = _open_unbound(keyring, key, sealed_access, alone)
    refresh = None
    if row.refresh_token_encrypted is not None:
        refresh = open_sealed(
            keyring,
            _from_text(row.refresh_token_encrypted),
            associated_data(key, REFRESH_FIELD),
            _ROW,
        ).decode()
    refresh, credentials, fields = _split_refresh(refresh)
    return assemble_token_set(
        access_token=access.decode(),
        refresh_token=refresh,
        expires_at=row.expires_at,
        scope=row.scope,
        params=decode_params(row.params),
        client_credentials=credentials,
        issued_at=row.issued_at,
        version=row.version,
        credentials=fields,
    )


def _open_unbound(keyring: KeyRing, key: TokenKey, sealed_access: bytes, alone: bool) -> bytes:
    # Only a value sealed before subkeys (version 1) can be a row of a version before the
    # row binding: a newer value opened without its binding would be a downgrade.
    if sealed_access[:1] != RAW_KEY_VERSION:
        raise DecryptionError
    purpose = ACCESS_ALONE if alone else ACCESS_WITH_REFRESH
    try:
        return open_sealed(keyring, sealed_access, associated_data(key, purpose), _ROW)
    except DecryptionError:
        # Sealed before the purpose said whether a refresh token is kept.
        return open_sealed(keyring, sealed_access, associated_data(key, ACCESS_FIELD), _ROW)


def _row_values(
    expires_at: datetime | None, scope: str | None, params: str | None, issued_at: datetime | None
) -> bytes:
    """The plain values of a row, as its access token's associated data ends: each one
    ``-`` for none, else ``+``, its length and itself, so no two rows' values read alike
    (the ids before them hold no NUL)."""
    parts = (_moment(expires_at), _counted(scope), _counted(params), _moment(issued_at))
    return ("\x00" + "".join(parts)).encode()


def _counted(text: str | None) -> str:
    return "-" if text is None else f"+{len(text)}:{text}"


def _moment(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:  # read as the storage layers do: local time
        moment = moment.astimezone(UTC)
    return f"+{_to_micros(moment)};"


def _optional(text: str | None) -> str:
    # "-" marks None, "+" prefixes a value, so "" and None stay distinct.
    return "-" if text is None else "+" + text


def _restore(text: str) -> str | None:
    return None if text == "-" else text[1:]


def seal_cache_record(
    keyring: KeyRing, key: TokenKey, tokens: TokenSet, version: int | None = None
) -> bytes:
    """The whole token set as one sealed value, for the cache, at the row's ``version``
    (default: the one ``tokens`` carry)."""
    expires = "" if tokens.expires_at is None else str(_to_micros(tokens.expires_at))
    issued = "" if tokens.issued_at is None else str(_to_micros(tokens.issued_at))
    plaintext = _SEPARATOR.join(
        (
            expires,
            _optional(tokens.scope),
            tokens.access_token,
            _optional(_refresh_field(tokens)),
            _optional(encode_params(tokens.params)),
            issued,
            str(tokens.version if version is None else version),
        )
    )
    return seal(keyring, plaintext.encode(), associated_data(key, CACHE_FIELD), "cache-record")


def open_cache_record(keyring: KeyRing, key: TokenKey, sealed: bytes) -> TokenSet:
    """Decrypt a cache value of connection ``key``.

    Raises:
        DecryptionError: the value is not a record of this connection, or was altered.
    """
    plaintext = open_sealed(
        keyring, sealed, associated_data(key, CACHE_FIELD), "cache-record"
    ).decode()
    try:
        expires, scope, access, refresh, params, issued, version = plaintext.split(_SEPARATOR)
        expires_at = None if not expires else _from_micros(int(expires))
        issued_at = None if not issued else _from_micros(int(issued))
        row_version = int(version)
    except ValueError:
        # Authenticated but malformed: only a bug or an incompatible writer does this.
        raise DecryptionError from None
    refresh_token, credentials, fields = _split_refresh(None if refresh == "-" else refresh[1:])
    # Positional, in TokenSet's field order: this runs on every Redis hit.
    return assemble_token_set(
        access,
        refresh_token,
        expires_at,
        None if scope == "-" else scope[1:],
        NO_PARAMS if params == "-" else decode_params(params[1:]),
        credentials,
        issued_at,
        row_version,
        fields,
    )


@dataclass(frozen=True, slots=True)
class LocalRecord:
    """What the in-process cache keeps of a token set: its secrets (the access token and
    the refresh field) sealed, bound to the connection; the rest, which is not secret, as
    is, so that a hit decrypts one short value and parses nothing else."""

    sealed: bytes = field(repr=False)
    expires_at: datetime | None
    scope: str | None
    params: Mapping[str, str]
    issued_at: datetime | None
    version: int


def seal_local_record(keyring: KeyRing, ids: tuple[str, str, str], tokens: TokenSet) -> LocalRecord:
    """The local record of the connection whose ``TokenKey`` has these ``ids``."""
    plaintext = tokens.access_token + _SEPARATOR + _optional(_refresh_field(tokens))
    sealed = seal(keyring, plaintext.encode(), _local_associated_data(ids), "local-record")
    return LocalRecord(
        sealed, tokens.expires_at, tokens.scope, tokens.params, tokens.issued_at, tokens.version
    )


def open_local_record(keyring: KeyRing, ids: tuple[str, str, str], record: LocalRecord) -> TokenSet:
    """The token set of a local record of the connection with these ``ids``.

    Raises:
        DecryptionError: the record is not this connection's, or its key left the ring.
    """
    plaintext = open_sealed(
        keyring, record.sealed, _local_associated_data(ids), "local-record"
    ).decode()
    access, _, refresh = plaintext.partition(_SEPARATOR)
    credentials = fields = None
    if refresh == "-":
        refresh_token = None
    elif refresh.startswith("\x1e", 1):  # a mark (_MARKS)
        refresh_token, credentials, fields = _split_refresh(refresh[1:])
    else:
        refresh_token = refresh[1:]
    return assemble_token_set(
        access,
        refresh_token,
        record.expires_at,
        record.scope,
        record.params,
        credentials,
        record.issued_at,
        record.version,
        fields,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(0, 0, micros)  # positional: measurably faster on the hot path
