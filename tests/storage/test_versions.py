"""Versions only grow, in commit order, whatever waits on a row lock (real PostgreSQL)."""

from __future__ import annotations

import threading
import time

import psycopg

from oauthvault import KeyRing, TokenKey, TokenSet
from oauthvault.crypto.sealing import seal_row
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.postgres import PostgresTokenStore

KEY = TokenKey("google", "ws_versions", "u")


def test_an_upsert_that_waited_for_the_row_lock_gets_a_newer_version(postgres_url, pg):
    """The upsert draws its version after the lock: a writer that committed while it
    waited (with a version drawn later than the upsert's first draw) is not overtaken."""
    ring = KeyRing.generate()
    row = seal_row(ring, KEY, TokenSet("a", None, None, None))
    store = PostgresTokenStore(parse_database_url(postgres_url))
    try:
        store.upsert(KEY, row)
        with psycopg.connect(postgres_url) as holder:
            holder.execute(
                "SELECT 1 FROM oauth_tokens WHERE workspace_id = %s FOR UPDATE",
                (KEY.workspace_id,),
            )
            versions: list[int] = []
            waiting = threading.Thread(target=lambda: versions.append(store.upsert(KEY, row)))
            waiting.start()
            time.sleep(0.3)  # the upsert has drawn from the sequence and waits for the lock
            holder.execute(
                "UPDATE oauth_tokens SET version = nextval('oauth_tokens_version_seq') "
                "WHERE workspace_id = %s RETURNING version",
                (KEY.workspace_id,),
            )
            held = holder.execute(
                "SELECT version FROM oauth_tokens WHERE workspace_id = %s", (KEY.workspace_id,)
            ).fetchone()[0]
            holder.commit()
            waiting.join(timeout=10)
        assert versions and versions[0] > held
        assert store.get(KEY).version == versions[0]
    finally:
        store.close()
