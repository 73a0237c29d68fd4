"""Where sealed rows live: PostgreSQL (:mod:`~oauthvault.storage.postgres`, generated from
:mod:`~oauthvault.storage.postgres_async`) or an SQLite file
(:mod:`~oauthvault.storage.sqlite`), the protocols they share (:mod:`~oauthvault.storage.base`),
their SQL, the change feed and the schema migrations. Nothing here knows a token in clear."""
