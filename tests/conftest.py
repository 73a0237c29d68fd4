"""The fixtures test modules share are plugins under tests/fixtures/, each declared once there:

- ``services``: ``postgres_url``, ``pg``, ``redis_url``, ``raw_redis``, ``private_redis``,
  ``redis_cluster``: real PostgreSQL and Redis, fresh per test.
- ``vault``: ``key``, ``clock``, ``sqlite_url``, ``database_url`` (SQLite, then PostgreSQL).
- ``provider``: ``op`` (the local OpenID provider), ``providers_file``, ``grant``.
- ``service``: ``env`` (the oauthvault service with a provider of its own).
- ``browser``: ``chromium``, ``tab``, ``host``.

A missing service fails the run: scripts/test starts PostgreSQL and Redis first, and no
test here skips for want of one.
"""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.vault",
    "tests.fixtures.provider",
    "tests.fixtures.service",
    "tests.fixtures.browser",
]
