"""Issue 19's gap: an installer sees no money, refused by the server and not only hidden.
Reading is split into ``read`` (technical) and ``money:read``; the roles map onto them in
``auth/users.py`` and every API route and console page asks ``scopes.OPERATIONS``. Here the
same billed site is read over HTTP with an installer's scopes and an operator's, through the
API and through the console; and existing tokens are migrated (an old ``read`` keeps what it
could do)."""

from __future__ import annotations

import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

from console_kit import SITE, Browserless, Console
from sqlalchemy import select

from sitegate.cloud.auth import tokens, users
from sitegate.cloud.auth.scopes import OPERATIONS, Scope
from sitegate.cloud.store import tables as t
from sitegate.cloud.store.db import alembic_config, make_engine, upgrade

# Money over the API, on the billed site (January's invoice of Anna is a real one)
MONEY_API = [
    "/billing/sites/{site}", "/billing/sites/{site}/invoices",
    "/billing/sites/{site}/overview", "/billing/sites/{site}/late",
    "/billing/sites/{site}/export", "/billing/sites/{site}/export?what=consumption",
    "/billing/sites/{site}/invoices/{n}", "/billing/sites/{site}/invoices/{n}/explain",
    "/billing/sites/{site}/invoices/{n}/pdf", "/payments/{site}/credits",
    "/jobs/{site}/jobs", "/jobs/{site}/export", "/expense/sites/{site}/periods",
    "/stays/{site}/units", "/stays/{site}/reservations",
]
TECHNICAL_API = ["/health", "/gateways", "/readings?gateway_id=gw-1&meter_id=m1&limit=5",
                 "/dead-letters", "/billing/sites"]
MONEY_PAGES = ["/web/sites/{site}/invoices", "/web/sites/{site}/invoices?period=2026-01",
               "/web/sites/{site}/invoices/{n}", "/web/sites/{site}/invoices/{n}/pdf",
               "/web/sites/{site}/statement?year=2026", "/web/sites/{site}/statement.pdf",
               "/web/sites/{site}/quality"]
TECHNICAL_PAGES = ["/web/sites/{site}", "/web/sites/{site}/admin", "/web/fleet",
                   "/web/fleet/rows"]


def _get(url: str, token: str) -> int:
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def _fill(path: str, console: Console) -> str:
    return path.format(site=SITE, n=console.numbers["anna"])


def test_installer_token_is_refused_money_and_reads_equipment(console: Console) -> None:
    installer, _ = tokens.create(console.engine, "installer",
                                 users.ROLE_SCOPES["installer"])
    operator, _ = tokens.create(console.engine, "operator", users.ROLE_SCOPES["operator"])
    owner, _ = tokens.create(console.engine, "owner", users.ROLE_SCOPES["owner"])
    for path in MONEY_API:
        url = console.url + _fill(path, console)
        assert _get(url, installer) == 403, path
        assert _get(url, operator) in (200, 404), path  # 404: no jobs/stays/expense set up
        assert _get(url, owner) == _get(url, operator), path
    for path in MONEY_API[:10]:  # the billed part exists: the operator reads all of it
        assert _get(console.url + _fill(path, console), operator) == 200, path
    for path in TECHNICAL_API:
        url = console.url + path
        assert _get(url, installer) == 200, path
        assert _get(url, operator) == 200, path


def test_installer_in_the_console_gets_403_on_money_pages(console: Console) -> None:
    console.user("inst@example.ch", "installer")
    console.user("op@example.ch", "operator")
    inst, op = Browserless(console.url), Browserless(console.url)
    assert inst.login("inst@example.ch") == 303 and op.login("op@example.ch") == 303
    for path in MONEY_PAGES:
        assert inst.get(_fill(path, console))[0] == 403, path
        assert op.get(_fill(path, console))[0] == 200, path
    for path in TECHNICAL_PAGES:
        assert inst.get(_fill(path, console))[0] == 200, path
        assert op.get(_fill(path, console))[0] == 200, path
    # and the pages offer no way there: no amounts, no links to money pages
    _, html, _ = inst.get("/web/sites")
    assert SITE in html and "CHF" not in html and "/invoices" not in html
    _, html, _ = inst.get(f"/web/sites/{SITE}")
    assert f"/web/sites/{SITE}/invoices" not in html and "/statement" not in html
    _, html, _ = op.get(f"/web/sites/{SITE}")
    assert f"/web/sites/{SITE}/invoices" in html


def test_roles_map_onto_the_two_reads() -> None:
    assert users.ROLE_SCOPES["installer"] == {Scope.READ, Scope.GATEWAY_ADMIN}
    assert users.ROLE_SCOPES["owner"] == {Scope.READ, Scope.MONEY_READ}
    assert users.ROLE_SCOPES["operator"] == set(Scope)
    assert users.ROLE_SCOPES["tenant"] == frozenset()
    inst = users.Principal(1, "i@x.ch", "I", "en", (users.Role(SITE, "installer"),))
    # an installer who is also the owner of the site sees its money as the owner
    both = users.Principal(1, "i@x.ch", "I", "en", (users.Role(SITE, "installer"),
                                                    users.Role(SITE, "owner")))
    money = [op for op, s in OPERATIONS.items() if s is Scope.MONEY_READ]
    assert {"invoice.show", "payments.list", "jobs.list", "stays.document",
            "expense.statement.show", "invoices.export"} <= set(money)
    assert not any(inst.may(op, SITE) for op in money)
    assert all(both.may(op, SITE) for op in money)
    assert inst.may("gateways.list", SITE) and inst.may("site.equipment", SITE)


def test_old_read_tokens_keep_money_after_the_migration(tmp_path: Path) -> None:
    from alembic import command

    db = str(tmp_path / "old.db")
    cfg = alembic_config(db)
    command.upgrade(cfg, "access_0001")  # the token table as it was before money:read
    made = {"reader": "read", "writer": "billing:write read", "gw": "gateway:admin",
            "site": "site:admin"}
    with sqlite3.connect(db) as conn:
        for i, (name, scopes) in enumerate(made.items()):
            conn.execute("INSERT INTO api_tokens (name, token_hash, scopes, created_at) "
                         "VALUES (?, ?, ?, '2026-01-01 00:00:00')", (name, f"{i:064x}", scopes))
    upgrade(db)
    engine = make_engine(db)
    with engine.connect() as conn:
        now = dict(conn.execute(select(t.api_tokens.c.name, t.api_tokens.c.scopes)).all())
    engine.dispose()
    assert now == {"reader": "money:read read", "writer": "billing:write money:read read",
                   "gw": "gateway:admin", "site": "site:admin"}
    command.downgrade(cfg, "access_0001")
    with sqlite3.connect(db) as conn:
        back = dict(conn.execute("SELECT name, scopes FROM api_tokens").fetchall())
    assert back == made
