"""The expense API on a real uvicorn server (token scopes, JSON only), and received
invoices from the store: the hierarchy, the issue's public example with the buildings'
and tenants' readings ingested as the gateway sends them, an overcharge alert and an
invoice whose period has not ended."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date

import pytest
from houses import SITE, ingest

from sitegate.cloud.api.app import create_app
from sitegate.cloud.auth import tokens
from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.billing.sitemodel import parse_site
from sitegate.cloud.expense import ops
from sitegate.cloud.store.db import make_engine, upgrade
from tests.helpers.app_server import serve_app

J1, F1, M1 = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)
TREE_SITE = dict(
    SITE,
    buildings=[{"id": "h1", "name": "Haus 1"}, {"id": "h2", "name": "Haus 2"}],
    billing_points=[dict(b, building="h1") for b in SITE["billing_points"]],
    meters=[{"id": m, "gateway": "gw-haus"} for m in ("main", "m-h1", "m-h2", "eA", "eB", "eC")],
    meter_assignments=[{"billing_point": bp, "meter": f"e{bp}", "from": "2020-01-01"}
                       for bp in "ABC"])
HIERARCHY = {"nodes": [
    {"id": "complex", "meters": {"electricity": "main"}, "alert_percent": "10"},
    {"id": "h1", "parent": "complex", "meters": {"electricity": "m-h1"}},
    {"id": "h2", "parent": "complex", "meters": {"electricity": "m-h2"}},
    {"id": "A", "parent": "h1"}, {"id": "B", "parent": "h1"}, {"id": "C", "parent": "h1"}]}
PERIOD = {"period": {"id": "2025", "from": "2025-01-01", "to": "2026-01-01",
                     "profile": "de-heizkostenv"},
          "categories": [{"id": "hauswart", "label": "Hauswart", "kind": "caretaker",
                          "key": "area"}]}


def tree_db(tmp_path):
    """The two-building site with January and February readings; (url, engine)."""
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    engine = make_engine(db)
    billing_ops.import_site(engine, parse_site(TREE_SITE))
    q = "1-0:1.8.0"  # electricity import, as the Modbus meters send it
    rows = []
    for meter, jan, feb in (("m-h1", "25", "50"), ("m-h2", "20", "40"), ("eA", "5", "10"),
                            ("eB", "8", "16"), ("eC", "12", "24"), ("main", "50", "100")):
        rows += [(meter, q, J1, "1000", "kWh"), (meter, q, F1, str(1000 + int(jan)), "kWh"),
                 (meter, q, M1, str(1000 + int(feb)), "kWh")]
    ingest(engine, "gw-haus", rows)
    return db, engine


@pytest.fixture
def server(tmp_path):
    db, engine = tree_db(tmp_path)
    full, _ = tokens.create(engine, "all", frozenset(Scope))
    reader, _ = tokens.create(engine, "reader", frozenset({Scope.READ, Scope.MONEY_READ}))
    engine.dispose()
    with serve_app(create_app(db)) as url:
        yield url, full, reader


def call(server, method: str, path: str, body: object = None, reader: bool = False):
    base, full, read_only = server
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "content-type": "application/json",
        "authorization": f"Bearer {read_only if reader else full}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if "json" in r.headers.get("content-type",
                                                                        "") else raw
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_statements_over_the_api_with_scopes(server) -> None:
    base = "/expense/sites/garten5/periods"
    bad = json.loads(json.dumps(PERIOD))
    bad["categories"][0]["key"] = "smell"
    code, body = call(server, "PUT", base, bad)
    assert code == 422 and body["detail"]["errors"][0].startswith("categories[0].key")
    assert call(server, "PUT", base, PERIOD)[0] == 200
    code, body = call(server, "PUT", base, PERIOD, reader=True)
    assert code == 403  # a read token creates nothing
    code, body = call(server, "POST", f"{base}/2025/invoices",
                      {"category": "hauswart", "amount": "1000.00", "entered_by": "API"})
    assert code == 200, body
    code, body = call(server, "PUT", f"{base}/2025/advances",
                      {"account": "anna", "billing_point": "A", "amount": "250.00"})
    assert code == 200, body
    code, body = call(server, "POST", f"{base}/2025/run", {"date": "2026-01-31"})
    assert code == 200, body
    # 1000.00 by area 60 : 90 : 50 of 200 m²: A 300.00, B 450.00, C 250.00;
    # Anna paid 250.00 in advances: due 50.00
    code, rows = call(server, "GET", f"{base}/2025/statements", reader=True)
    assert {v["account"]: v["total_due"] for v in rows} == {
        "anna": "50.00", "ben": "450.00", "carla": "250.00"}
    code, e = call(server, "GET", f"{base}/2025/statements/anna/explain", reader=True)
    assert code == 200 and e["lines"][0]["basis"].startswith("1000.00 x 60.000 / 200.000")
    code, raw = call(server, "GET", f"{base}/2025/statements/anna/pdf", reader=True)
    assert code == 200 and raw[:5] == b"%PDF-"
    code, rows = call(server, "GET", f"{base}/2025/export?format=json", reader=True)
    assert [r["amount"] for r in rows] == ["300.00", "450.00", "250.00"]
    code, body = call(server, "GET", f"{base}/2025/statements/nobody", reader=True)
    assert code == 404


def test_received_invoices_down_the_hierarchy(server) -> None:
    site = "/expense/sites/garten5"
    assert call(server, "PUT", f"{site}/hierarchy", HIERARCHY, reader=True)[0] == 403
    code, body = call(server, "PUT", f"{site}/hierarchy", HIERARCHY)
    assert code == 200 and body["nodes"] == 6
    inv = f"{site}/meters/main/invoices/received"
    code, jan = call(server, "POST", inv, {"from": "2025-01-01", "to": "2025-02-01",
                                           "amount": "200.00", "consumption": "50",
                                           "entered_by": "Verwaltung"})
    assert code == 200, jan
    # The public example, from the readings: buildings 25 and 20 kWh of the 50 billed:
    # 100.00 and 80.00, 5 kWh (20.00) unmetered at the complex; h1's tenants 5, 8, 12 kWh:
    # 20.00, 32.00, 48.00.
    code, d = call(server, "GET", f"{site}/received/{jan['id']}/distribution", reader=True)
    assert code == 200 and d["distributed"], d
    tree = d["tree"]
    assert (tree["unmetered_consumption"], tree["unmetered_amount"]) == ("5", "20.00")
    h1, h2 = tree["children"]
    assert (h1["amount"], h2["amount"]) == ("100.00", "80.00")
    assert [(t["node"], t["amount"]) for t in h1["children"]] == [
        ("A", "20.00"), ("B", "32.00"), ("C", "48.00")]
    # February at 260.00 for 50 kWh: 5.20/kWh, 30 % above January's 4.00 (threshold 10 %)
    code, feb = call(server, "POST", inv, {"from": "2025-02-01", "to": "2025-03-01",
                                           "amount": "260.00", "consumption": "50",
                                           "entered_by": "Verwaltung"})
    code, listed = call(server, "GET", inv, reader=True)
    assert [x["amount"] for x in listed["invoices"]] == ["200.00", "260.00"]
    assert [(a["id"], a["rise_percent"]) for a in listed["alerts"]] == [(feb["id"], "30.0")]
    code, alerts = call(server, "GET", f"{site}/received/alerts", reader=True)
    assert alerts == listed["alerts"]
    # a period that has not ended is not distributed, and says so
    code, fut = call(server, "POST", inv, {"from": "2099-01-01", "to": "2099-02-01",
                                           "amount": "1.00", "consumption": "1",
                                           "entered_by": "Verwaltung"})
    code, d = call(server, "GET", f"{site}/received/{fut['id']}/distribution", reader=True)
    assert code == 200 and d["distributed"] is False and "has ended" in d["reason"]


def test_tariff_price_alert_and_provisional_cost(tmp_path) -> None:
    """With a tariff price of 4.50 on the complex: January's 4.00/kWh raises nothing,
    February's 5.20 is 15.6 % above the tariff (threshold 10 %): an alert. An invoice for
    February-March looked at on 1 March has not ended: the cost so far at 4.50/kWh from
    the February readings: complex 50 kWh = 225.00; h1 25 = 112.50, h2 20 = 90.00 (5 kWh
    = 22.50 unmetered); A 5 = 22.50, B 8 = 36.00, C 12 = 54.00."""
    _db, engine = tree_db(tmp_path)
    h = json.loads(json.dumps(HIERARCHY))
    h["nodes"][0]["price"] = "4.50"
    ops.set_hierarchy(engine, None, "h.json", json.dumps(h))
    for first, end, amount in (("2025-01-01", "2025-02-01", "200.00"),
                               ("2025-02-01", "2025-03-01", "260.00")):
        ops.add_received(engine, None, "main", date.fromisoformat(first),
                         date.fromisoformat(end), amount, "50", "test")
    listed = ops.list_received(engine, None, "main")
    assert [(a["id"], a["rise_percent"], a["compared_with"]) for a in listed["alerts"]] == \
        [(2, "15.6", "tariff")]
    rid = ops.add_received(engine, None, "main", F1, date(2025, 4, 1), "999.00", "200",
                           "test")["id"]
    d = ops.distribution(engine, None, rid, today=M1)
    assert d["distributed"] is False and d["provisional"] is True
    tree = d["tree"]
    assert (tree["amount"], tree["unmetered_amount"]) == ("225.00", "22.50")
    h1, h2 = tree["children"]
    assert (h1["amount"], h2["amount"]) == ("112.50", "90.00")
    assert [t["amount"] for t in h1["children"]] == ["22.50", "36.00", "54.00"]
    engine.dispose()
