"""Alembic environment: online migrations only, URL from the caller's Config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from sitegate.cloud.store.db import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url must be set by the caller (sitegate.cloud.store.db.upgrade)"
engine = make_engine(url) if url.startswith("sqlite") else None
if engine is None:
    from sqlalchemy import create_engine

    engine = create_engine(url, poolclass=pool.NullPool)

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
