"""Realistic token sizes, and bulk loading of many connections."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import redis

from oauthvault import KeyRing, TokenKey, TokenSet
from oauthvault.cache import cache_key
from oauthvault.cache.versioned import frame
from oauthvault.crypto.envelope import NONCE_SIZE, VERSION
from oauthvault.crypto.sealing import (
    ACCESS_WITH_REFRESH,
    associated_data,
    seal_cache_record,
    seal_row,
)

# Google-like sizes: a ~220-character access token, a ~100-character refresh token.
ACCESS = "ya29.a0Ae4lvC" + "x" * 207
REFRESH = "1//0gHZq3" + "r" * 94
SCOPE = "https://www.googleapis.com/auth/gmail.send"


def plaintext_record_size() -> int:
    """The seed design's cached JSON value, in bytes."""
    record = {
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "expires_at": datetime(2030, 1, 1, tzinfo=UTC).isoformat(),
        "scope": SCOPE,
    }
    return len(json.dumps(record).encode())


@dataclass(frozen=True)
class SealedSample:
    access_text: str
    refresh_text: str | None
    key_id: str
    access_raw: bytes
    access_ad: bytes


def sealed_sample(ring: KeyRing) -> SealedSample:
    """A sealed row for the floors' tables, and one bare AES-GCM ciphertext of the access
    token (the token-row subkey, the connection's associated data) for a floor to open."""
    key = TokenKey("floor", "ws", "sample")
    row = seal_row(ring, key, TokenSet(ACCESS, REFRESH, None, SCOPE))
    ad = associated_data(key, ACCESS_WITH_REFRESH)  # the sample has a refresh token
    nonce = os.urandom(NONCE_SIZE)
    body = ring.primary.subkeys["token-row"].encrypt(nonce, ACCESS.encode(), ad)
    return SealedSample(
        row.access_token_encrypted,
        row.refresh_token_encrypted,
        row.key_id,
        VERSION + ring.primary.key_id + nonce + body,
        ad,
    )


def floor_params(key: TokenKey, sealed: SealedSample) -> tuple[object, ...]:
    return (
        key.provider,
        key.workspace_id,
        key.actor_id,
        sealed.access_text,
        sealed.refresh_text,
        sealed.key_id,
        datetime.now(UTC) + timedelta(hours=1),
        SCOPE,
    )


def load_connections(
    sql: psycopg.Connection,
    cache: redis.Redis,
    ring: KeyRing,
    total: int,
    sample: int = 1000,
    first: int = 0,
) -> list[TokenKey]:
    """Store sealed connections ``first`` to ``total`` (COPY + pipelined SET; a run that
    grows the set loads only what is new) and return a random sample of the keys of all
    ``total``, spread over the whole set."""
    expires = datetime.now(UTC) + timedelta(hours=2)
    tokens = TokenSet(ACCESS, REFRESH, expires, SCOPE, version=1)  # the rows' default version
    batch = 20_000
    # A bulk load of the benchmark's own: no change notification per row.
    sql.execute("SET session_replication_role = replica")
    with sql.cursor() as cursor:
        for start in range(first, total, batch):
            with cursor.copy(
                "COPY oauth_tokens (id, provider, workspace_id, actor_id, access_token_encrypted,"
                " refresh_token_encrypted, key_id, expires_at, scope) FROM STDIN"
            ) as copy:
                pipe = cache.pipeline(transaction=False)
                for index in range(start, min(total, start + batch)):
                    key = TokenKey("bulk", f"ws_{index % 5000:05d}", f"user_{index:08d}")
                    row = seal_row(ring, key, tokens)
                    copy.write_row(
                        (
                            f"00000000-0000-4000-8000-{index:012d}",
                            key.provider,
                            key.workspace_id,
                            key.actor_id,
                            row.access_token_encrypted,
                            row.refresh_token_encrypted,
                            row.key_id,
                            expires,
                            SCOPE,
                        )
                    )
                    value = frame(1, seal_cache_record(ring, key, tokens))
                    pipe.set(cache_key(key), value, ex=7200)
                pipe.execute()
    sql.execute("SET session_replication_role = DEFAULT")
    sql.execute("VACUUM (ANALYZE) oauth_tokens")  # the visibility map: index-only scans
    chosen = random.Random(7).sample(range(total), min(sample, total))
    return [TokenKey("bulk", f"ws_{i % 5000:05d}", f"user_{i:08d}") for i in chosen]
