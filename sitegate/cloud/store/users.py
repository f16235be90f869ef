"""Every query of the web console's people: users, roles, sessions, one-time links and
failed logins (tables in ``tables_web``). The rules are in ``sitegate.cloud.auth.users``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from sitegate.cloud.store.tables_web import (
    web_links,
    web_login_failures,
    web_roles,
    web_sessions,
    web_site_notes,
    web_site_status,
    web_users,
)


def user_by_email(conn: Connection, email: str) -> dict[str, Any] | None:
    row = conn.execute(select(web_users).where(web_users.c.email == email)).first()
    return None if row is None else dict(row._mapping)


def user_by_id(conn: Connection, user_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(web_users).where(web_users.c.id == user_id)).first()
    return None if row is None else dict(row._mapping)


def insert_user(conn: Connection, **values: Any) -> int:
    return int(conn.execute(web_users.insert().values(**values)).inserted_primary_key[0])


def update_user(conn: Connection, user_id: int, **values: Any) -> None:
    conn.execute(update(web_users).where(web_users.c.id == user_id).values(**values))


def all_users(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(web_users).order_by(web_users.c.id))]


def roles_of(conn: Connection, user_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    q = select(web_roles).where(web_roles.c.user_id.in_(user_ids)).order_by(web_roles.c.id)
    out: dict[int, list[dict[str, Any]]] = {}
    for r in conn.execute(q):
        out.setdefault(r.user_id, []).append(dict(r._mapping))
    return out


def add_role(conn: Connection, user_id: int, site_id: str, role: str,
             account_id: str | None) -> bool:
    """False when the user already has exactly this role."""
    c = web_roles.c
    q = select(c.id).where(c.user_id == user_id, c.site_id == site_id, c.role == role)
    q = q.where(c.account_id.is_(None) if account_id is None else c.account_id == account_id)
    if conn.execute(q).first():
        return False
    conn.execute(web_roles.insert().values(user_id=user_id, site_id=site_id, role=role,
                                           account_id=account_id))
    return True


# -- sessions ------------------------------------------------------------------------------


def insert_session(conn: Connection, **values: Any) -> None:
    conn.execute(web_sessions.insert().values(**values))


def session_by_hash(conn: Connection, id_hash: str) -> dict[str, Any] | None:
    row = conn.execute(select(web_sessions).where(web_sessions.c.id_hash == id_hash)).first()
    return None if row is None else dict(row._mapping)


def delete_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == id_hash))


def delete_sessions_of(conn: Connection, user_id: int) -> int:
    return conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id)).rowcount


def delete_expired_sessions(conn: Connection, now: datetime) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))


# -- one-time links ------------------------------------------------------------------------


def insert_link(conn: Connection, **values: Any) -> None:
    conn.execute(web_links.insert().values(**values))


def link_by_hash(conn: Connection, token_hash: str) -> dict[str, Any] | None:
    row = conn.execute(select(web_links).where(web_links.c.token_hash == token_hash)).first()
    return None if row is None else dict(row._mapping)


def use_link(conn: Connection, token_hash: str, now: datetime) -> bool:
    """Mark a link used; False when it already was (a second use loses the race)."""
    c = web_links.c
    res = conn.execute(update(web_links).where(c.token_hash == token_hash, c.used_at.is_(None))
                       .values(used_at=now))
    return res.rowcount == 1


# -- failed logins -------------------------------------------------------------------------


def add_failure(conn: Connection, keys: list[str], at: datetime) -> None:
    conn.execute(web_login_failures.insert(), [{"key": k, "at": at} for k in keys])


def failures_since(conn: Connection, key: str, since: datetime) -> tuple[int, datetime | None]:
    """How many failures ``key`` had since ``since``, and the oldest of them."""
    c = web_login_failures.c
    n, first = conn.execute(select(func.count(), func.min(c.at)).where(
        c.key == key, c.at > since)).one()
    return int(n), first


def forget_failures(conn: Connection, before: datetime, key: str | None = None) -> None:
    """Drop failures older than ``before`` (or, with ``key``, all of that key's)."""
    c = web_login_failures.c
    q = delete(web_login_failures)
    conn.execute(q.where(c.key == key) if key is not None else q.where(c.at <= before))


# -- site administration -------------------------------------------------------------------


def site_status(conn: Connection, site_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(web_site_status).where(
        web_site_status.c.site_id == site_id)).first()
    return None if row is None else dict(row._mapping)


def set_site_status(conn: Connection, site_id: str, status: str, at: datetime,
                    by: str) -> None:
    values = {"status": status, "updated_at": at, "updated_by": by}
    if site_status(conn, site_id) is None:
        conn.execute(web_site_status.insert().values(site_id=site_id, **values))
    else:
        conn.execute(update(web_site_status).where(web_site_status.c.site_id == site_id)
                     .values(**values))


def site_notes(conn: Connection, site_id: str, limit: int = 200) -> list[dict[str, Any]]:
    c = web_site_notes.c
    q = select(web_site_notes).where(c.site_id == site_id).order_by(c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in conn.execute(q)]


def add_site_note(conn: Connection, **values: Any) -> None:
    conn.execute(web_site_notes.insert().values(**values))


def close_site_issue(conn: Connection, site_id: str, note_id: int, at: datetime,
                     by: str) -> bool:
    c = web_site_notes.c
    res = conn.execute(update(web_site_notes).where(
        c.id == note_id, c.site_id == site_id, c.kind == "issue", c.closed_at.is_(None))
        .values(closed_at=at, closed_by=by))
    return res.rowcount == 1


def site_people(conn: Connection, site_id: str) -> list[dict[str, Any]]:
    """Users with a role on the site (or on every site), with the role."""
    q = (select(web_users.c.email, web_users.c.name, web_users.c.disabled, web_roles.c.role,
                web_roles.c.account_id, web_roles.c.site_id)
         .join(web_roles, web_roles.c.user_id == web_users.c.id)
         .where(web_roles.c.site_id.in_((site_id, "*"))).order_by(web_roles.c.role,
                                                                   web_users.c.email))
    return [dict(r._mapping) for r in conn.execute(q)]
