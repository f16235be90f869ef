"""Helpers of the web tests: the web console on a real uvicorn server (free loopback
port) over a fresh SQLite database holding a billed site: two buildings, three flats,
three tenants, January 2026 billed from cumulative register readings. People are made
the way the CLI makes them."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from sitegate.cloud.api.app import create_app
from sitegate.cloud.auth import users
from sitegate.cloud.billing import ops
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.cloud.store.tables import readings
from sitegate.cloud.web.settings import WebSettings
from tests.helpers.app_server import serve_app

SITE = "lindenweg"
PASSWORD = "correct horse battery"
# kWh per 15 minutes of each flat's meter in January 2026 (31 days = 2,976 quarter hours)
PER_QUARTER = {"m1": D("0.25"), "m2": D("0.125"), "m3": D("0.5")}
MODEL: dict[str, Any] = {
    "site": {"id": SITE, "name": "Lindenweg 12", "timezone": "Europe/Zurich",
             "gateways": ["gw-1"], "qr_reference_prefix": "42",
             "creditor": {"name": "Hausverwaltung Linden AG", "street": "Bahnhofstrasse",
                          "house_num": "1", "pcode": "8000", "city": "Zürich", "country": "CH",
                          "iban": "CH44 3199 9123 0008 8901 2"}},
    "buildings": [{"id": "a", "name": "Haus A"}, {"id": "b", "name": "Haus B"}],
    "meters": [{"id": m, "gateway": "gw-1"} for m in PER_QUARTER],
    "billing_points": [
        {"id": "a-1", "building": "a", "name": "Wohnung A1", "tariff": "res", "owner": "own"},
        {"id": "a-2", "building": "a", "name": "Wohnung A2", "tariff": "res", "owner": "own"},
        {"id": "b-1", "building": "b", "name": "Wohnung B1", "tariff": "res", "owner": "own"}],
    "meter_assignments": [
        {"billing_point": "a-1", "meter": "m1", "from": "2025-01-01"},
        {"billing_point": "a-2", "meter": "m2", "from": "2025-01-01"},
        {"billing_point": "b-1", "meter": "m3", "from": "2025-01-01"}],
    "accounts": [
        {"id": "own", "name": "Eigentümer AG", "kind": "owner"},
        {"id": "anna", "name": "Anna Muster"}, {"id": "ben", "name": "Ben Beispiel"},
        {"id": "carl", "name": "Carl Cheng"}],
    "occupancy": [
        {"billing_point": "a-1", "account": "anna", "from": "2025-01-01"},
        {"billing_point": "a-2", "account": "ben", "from": "2025-01-01"},
        {"billing_point": "b-1", "account": "carl", "from": "2025-01-01"}],
    "badges": [{"tag": "ANNA0001", "account": "anna"}, {"tag": "BEN00001", "account": "ben"}],
    "tariffs": [{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
        {"key": "energy", "label": "Strom", "price": "0.30", "vat": "0"}]}]}],
}


def put_register(engine: Engine, meter: str, first: datetime, quarters: int,
                 per: D, start: D = D(0), seq0: int = 1) -> int:
    """A cumulative register growing ``per`` kWh each quarter hour from ``first`` (UTC)."""
    rows = [{"gateway_id": "gw-1", "seq": seq0 + k, "meter_id": meter,
             "ts": first + timedelta(minutes=15 * k), "quantity": "1-0:1.8.0",
             "value": str(start + per * k), "unit": "kWh", "quality": "good", "flags": "[]",
             "received_at": datetime(2026, 2, 1, tzinfo=UTC)} for k in range(quarters + 1)]
    with engine.begin() as conn:
        conn.execute(readings.insert(), rows)
    return seq0 + len(rows)


@dataclass
class Console:
    url: str  # http://127.0.0.1:PORT (the console is at url + "/web")
    db: str
    engine: Engine
    numbers: dict[str, int] = field(default_factory=dict)  # account -> January invoice

    def user(self, email: str, role: str, account: str | None = None,
             site: str = SITE, language: str = "en") -> None:
        users.add_user(self.engine, email, email.split("@")[0].title(),
                       users.check_role(role, site, account), language, PASSWORD)


def billed_site(engine: Engine) -> dict[str, int]:
    ops.import_site(engine, MODEL)
    # January 2026 in Zurich: 2025-12-31T23:00Z .. 2026-01-31T23:00Z, 2,976 quarter hours
    # a year before, Anna's flat: 0.2 kWh a quarter hour, 595.2 kWh in January 2025; her
    # register stands at 5000 kWh on 1 January 2026
    seq = put_register(engine, "m1", datetime(2024, 12, 31, 23, tzinfo=UTC), 2976, D("0.2"))
    for meter, per in PER_QUARTER.items():
        seq = put_register(engine, meter, datetime(2025, 12, 31, 23, tzinfo=UTC), 2976, per,
                           start=D(5000) if meter == "m1" else D(0), seq0=seq)
    ops.run_bill(engine, SITE, "2026-01")
    return {v["account"]: v["number"] for v in ops.invoices(engine, SITE, "2026-01")}


@contextlib.contextmanager
def serve(db: str, settings: WebSettings | None = None) -> Iterator[str]:
    with serve_app(create_app(db, web=settings)) as url:
        yield url


_TEMPLATE: dict[str, tuple[Path, dict[str, int]]] = {}


def make_console(tmp: Path, settings: WebSettings | None = None) -> Iterator[Console]:
    """A console over a copy of one billed database (billing it once per test session)."""
    if "db" not in _TEMPLATE:
        src = Path(tempfile.mkdtemp(prefix="sitegate-web-")) / "billed.db"
        upgrade(str(src))
        e = make_engine(str(src))
        _TEMPLATE["db"] = (src, billed_site(e))
        with e.connect() as conn:  # everything into the main file, then copy that
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        e.dispose()
    src, numbers = _TEMPLATE["db"]
    db = str(tmp / "cloud.db")
    shutil.copyfile(src, db)
    engine = make_engine(db)
    try:
        with serve(db, settings) as url:
            yield Console(url, db, engine, numbers)
    finally:
        engine.dispose()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kw: Any) -> None:
        return None


class Browserless:
    """A client that keeps cookies by hand: http.cookiejar sends Secure cookies only over
    HTTPS, where browsers also send them to http://127.0.0.1. Redirects are not followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.opener = urllib.request.build_opener(_NoRedirect)

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
        hdrs = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                **(headers or {})}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            r = self.opener.open(req, timeout=30)
        except urllib.error.HTTPError as e:
            r = e
        body = r.read()
        for c in r.headers.get_all("set-cookie") or []:
            name, _, rest = c.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if "max-age=0" in c.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        text = body.decode("utf-8", "replace") if b"%PDF" not in body[:8] else body
        return r.status, text, r.headers

    def get(self, path: str) -> tuple[int, str, Any]:
        return self.request("GET", path)

    def csrf(self, path: str) -> str:
        code, html, _ = self.get(path)
        assert code == 200, (code, html[:300])
        return re.search(r'name="csrf" value="([^"]+)"', html)[1]

    def login(self, email: str, password: str = PASSWORD) -> int:
        token = self.csrf("/web/login")
        code, _, _ = self.request("POST", "/web/login",
                                  {"email": email, "password": password, "csrf": token})
        return code
