"""Alembic environment: online migrations only, URL handed over by oauthvault."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

url = context.config.attributes["sqlalchemy_url"]
engine = create_engine(url, poolclass=pool.NullPool)
try:
    with engine.connect() as connection:
        context.configure(connection=connection, render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()
