"""What the vault's calls return besides tokens: a delete's outcome, where reads were
answered, readiness, a rotation's report (plain values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from oauthvault.models import TokenKey, TokenSet
from oauthvault.providers.api_targets import ApiTarget
from oauthvault.providers.credentials import Placement

__all__ = [
    "ApiAccess",
    "BackendMode",
    "CacheInfo",
    "DeleteOutcome",
    "ReadCounters",
    "Readiness",
    "RotationReport",
]

BackendMode = Literal["db-only", "db+cache"]


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """What ``delete_tokens(..., revoke=True)`` did. True (as a bool) when a row was deleted.

    ``revoked`` is True when the provider confirmed the revocation, False when it refused
    or could not be reached, None when nothing was stored or the provider has no standard
    revocation endpoint.
    """

    deleted: bool
    revoked: bool | None

    def __bool__(self) -> bool:
        return self.deleted


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """Counters of where this vault's reads were answered, and the state of its local
    cache and change feed (for metrics and tests; counts since the vault was made).

    ``local_live``: local entries are being served (the feed is connected and its last
    probe came back; always on sync SQLite). ``refused``: cached values turned down as
    older than a change this process heard of. ``feed_lag``: the last probe's round trip,
    in seconds. ``feed_unsupported``: notifications never arrive (a transaction pooler).
    ``feed_live``: the change feed is listening and its last probe came back (it runs
    whatever the local cache setting; while it is not, Redis values are confirmed with the
    database).
    """

    local_enabled: bool
    local_live: bool
    local_entries: int
    local_hits: int
    local_misses: int
    redis_hits: int
    redis_misses: int
    database_reads: int
    refused: int
    changes_heard: int
    local_suspensions: int
    feed_reconnects: int = 0
    feed_lag: float | None = None
    feed_unsupported: bool = False
    feed_live: bool = False


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether this vault can serve, and the state of each part (no secrets).

    ``ready`` is True when the database answers with this version's schema; the other parts
    only degrade service: ``cache`` is ``up``, ``down`` (serving from the database) or
    ``off``; ``local_cache`` is ``live``, ``suspended`` (its feed reconnecting),
    ``unsupported`` (notifications do not arrive) or ``off``.
    """

    ready: bool
    database: Literal["up", "down", "old_schema"]
    cache: Literal["up", "down", "off"]
    local_cache: Literal["live", "suspended", "unsupported", "off"]
    providers_awaiting_discovery: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "database": self.database,
            "cache": self.cache,
            "local_cache": self.local_cache,
            "providers_awaiting_discovery": list(self.providers_awaiting_discovery),
        }


@dataclass(slots=True)
class ReadCounters:
    """Where this vault's reads beyond the local cache were answered."""

    redis_hits: int = 0
    redis_misses: int = 0
    database_reads: int = 0


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What ``rotate_key`` did: rows re-sealed, and rows no key in the ring can open."""

    rotated: int
    undecryptable: list[TokenKey] = field(default_factory=list)
    remaining_by_key_id: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiAccess:
    """A request to a connection's provider API: where it may go (``target``) and what it
    carries (``placement``: the credential's headers and query parameters, never shown)."""

    target: ApiTarget
    placement: Placement
    #: The tokens the placement was made from (a refusal of them is renewed once).
    tokens: TokenSet | None = field(default=None, repr=False, compare=False)
