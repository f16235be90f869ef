"""The cloud database: one SQLAlchemy Core engine for SQLite (default) or PostgreSQL.

Schema changes are Alembic migrations in ``migrations/versions``. Each part of the cloud
keeps its own branch (``ingest``, ``billing``): ``upgrade`` brings every branch to its head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept a bare file path for SQLite and plain postgresql:// for psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


class NotReady(RuntimeError):
    """The database is missing, unreachable or behind the code's schema; the message says
    what to do (the CLI prints it as one line)."""


def pending(engine: Engine) -> list[str]:
    """Schema heads (one per branch) the database has not reached yet; [] when current."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    reached = {r.revision for c in current for r in script.iterate_revisions(c, "base")}
    return sorted(set(script.get_heads()) - reached)


def open_db(url: str, migrate: bool = False) -> Engine:
    """An engine on a database at the current schema: migrated first when ``migrate``
    (the commands that set a database up), else refused with the command to run, never
    a traceback from a missing table."""
    target = normalize_url(url)
    shown = url if "://" not in url else make_url(target).render_as_string()
    path = target.removeprefix("sqlite:///")
    if not migrate and target.startswith("sqlite:///") and not Path(path).exists():
        raise NotReady(f"no database at {shown}: create it with "
                       f"'sitegate-cloud migrate --db {shown}'")
    try:
        if migrate:
            upgrade(url)
        engine = make_engine(url)
        missing = [] if migrate else pending(engine)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise NotReady(f"cannot open database {shown}: {reason}") from None
    if missing:
        engine.dispose()
        raise NotReady(f"database {shown} is not migrated (schema {', '.join(missing)} "
                       f"missing): run 'sitegate-cloud migrate --db {shown}'")
    return engine


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (every branch)."""
    command.upgrade(alembic_config(url), "heads")
