"""What the vault does with non-OAuth credentials beyond storing them: the status a
verification gives a stored credential, and the rules for handing one out.

Flows yield steps (no I/O here); each vault performs them.
"""

from __future__ import annotations

from datetime import datetime

from oauthvault.errors import WrongCredentialKind
from oauthvault.models import ConnectionEvent, ConnectionStatus, Credentials, TokenKey, TokenSet
from oauthvault.vault.steps import CommitLock, Emit, Flow, LockRow, RowState, UpdateLocked

__all__ = ["bearer_tokens", "credentials_of", "mark_status"]


def mark_status(key: TokenKey, status: ConnectionStatus, note: str | None, now: datetime) -> Flow:
    """Set a stored connection's status (and ``last_error``) under its row lock, emitting
    ``status_changed`` when that is news. Returns whether a row was there."""
    state: RowState = yield LockRow(key)
    if state.row is None:
        yield CommitLock()
        return False
    previous = state.status
    if previous == status and state.last_error == note:
        yield CommitLock()
        return True
    yield UpdateLocked(status, note)
    yield CommitLock()
    if previous != status:
        event = ConnectionEvent(
            "status_changed",
            key.provider,
            key.workspace_id,
            key.actor_id,
            str(status),
            None if previous is None else str(previous),
            note,
            now,
        )
        yield Emit(event)
    return True


def bearer_tokens(ids: tuple[str, str, str], tokens: TokenSet) -> TokenSet:
    """``tokens`` when they carry an access token (OAuth, or minted from an ``app`` or
    ``two_step`` credential).

    Raises:
        WrongCredentialKind: the connection holds an API key, a password or other fields.
    """
    fields = tokens.credentials
    if fields is not None and fields.static:
        raise WrongCredentialKind(
            fields.kind,
            f"{'/'.join(ids)} holds an {fields.kind} credential, not a token: read it with "
            "get_credentials",
        )
    return tokens


def credentials_of(key: TokenKey, tokens: TokenSet) -> Credentials:
    """The credential fields of a non-OAuth connection.

    Raises:
        WrongCredentialKind: the connection holds OAuth tokens.
    """
    fields = tokens.credentials
    if fields is None:
        raise WrongCredentialKind(
            "oauth2",
            f"{key.provider}/{key.workspace_id}/{key.actor_id} holds OAuth tokens, not a "
            "credential: read them with get_access_token",
        )
    return fields
