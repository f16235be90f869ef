"""Every jobs query: settings, jobs, their state changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from sitegate.cloud.store.tables_jobs import jobs as J
from sitegate.cloud.store.tables_jobs import jobs_events as EV
from sitegate.cloud.store.tables_jobs import jobs_settings as S


def settings_text(conn: Connection, site_id: str) -> str | None:
    return conn.execute(select(S.c.settings).where(S.c.site_id == site_id)).scalar()


def put_settings(conn: Connection, site_id: str, text: str, at: datetime) -> bool:
    exists = settings_text(conn, site_id) is not None
    if exists:
        conn.execute(S.update().where(S.c.site_id == site_id).values(settings=text,
                                                                     imported_at=at))
    else:
        conn.execute(S.insert().values(site_id=site_id, settings=text, imported_at=at))
    return exists


def job(conn: Connection, site_id: str, job_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(J).where(J.c.site_id == site_id, J.c.id == job_id)).first()
    return None if row is None else dict(row._mapping)


def job_by_token(conn: Connection, token_hash: str) -> dict[str, Any] | None:
    row = conn.execute(select(J).where(J.c.token_hash == token_hash)).first()
    return None if row is None else dict(row._mapping)


def jobs(conn: Connection, site_id: str) -> list[dict[str, Any]]:
    q = select(J).where(J.c.site_id == site_id).order_by(J.c.id)
    return [dict(r._mapping) for r in conn.execute(q)]


def put_job(conn: Connection, site_id: str, job_id: str, at: datetime, **values: Any) -> None:
    where = (J.c.site_id == site_id) & (J.c.id == job_id)
    if conn.execute(select(J.c.id).where(where)).first():
        conn.execute(J.update().where(where).values(updated_at=at, **values))
    else:
        conn.execute(J.insert().values(site_id=site_id, id=job_id, updated_at=at, **values))


def add_event(conn: Connection, site_id: str, job_id: str, at: datetime, state: str,
              note: str | None) -> None:
    conn.execute(EV.insert().values(site_id=site_id, job_id=job_id, at=at, state=state,
                                    note=note))


def events(conn: Connection, site_id: str, job_id: str) -> list[dict[str, Any]]:
    q = select(EV.c.at, EV.c.state, EV.c.note).where(
        EV.c.site_id == site_id, EV.c.job_id == job_id).order_by(EV.c.id)
    return [dict(r._mapping) for r in conn.execute(q)]
