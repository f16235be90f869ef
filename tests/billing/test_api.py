"""The billing HTTP API on a real uvicorn server on a free loopback port."""

from __future__ import annotations

import json
import tomllib
import urllib.error
import urllib.request
from datetime import date
from decimal import ROUND_HALF_UP
from decimal import Decimal as D
from pathlib import Path

import pytest

from sitegate.cloud.api.app import create_app
from sitegate.cloud.auth import tokens
from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.store.db import make_engine, upgrade
from tests.helpers.app_server import serve_app

EXAMPLE = Path(__file__).resolve().parents[2] / "config/examples/site-lindenweg.toml"


def _json_default(o: object) -> str:
    return o.isoformat() if hasattr(o, "isoformat") else str(o)


@pytest.fixture
def server(tmp_path, register, put_readings):
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    engine = make_engine(db)
    with engine.begin() as conn:
        put_readings(conn, "bldg-lindenweg-12", "apt-1", register("2026-01", lambda i: D("0.25")))
    # every route needs a token (issue 12): this one may do all the API does
    token, _ = tokens.create(engine, "test", frozenset(Scope))
    engine.dispose()
    with serve_app(create_app(db)) as url:
        yield url, token


def call(server: tuple[str, str], method: str, path: str,
         body: object = None) -> tuple[int, object]:
    base, token = server
    data = None if body is None else json.dumps(body, default=_json_default).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json",
                                          "authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            ctype = r.headers.get("content-type", "")
            return r.status, json.loads(raw) if "json" in ctype else raw
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_site_bill_lifecycle(server) -> None:
    model = tomllib.loads(EXAMPLE.read_text())
    bad = json.loads(json.dumps(model, default=_json_default))
    bad["billing_points"][0]["tariff"] = "nope"
    code, body = call(server, "PUT", "/billing/sites", bad)
    assert code == 422 and "billing_points[0].tariff: unknown tariff 'nope'" in \
        body["detail"]["errors"]
    code, body = call(server, "PUT", "/billing/sites", model)
    assert code == 200 and body["site"] == "lindenweg-12"
    code, body = call(server, "POST", "/billing/sites/lindenweg-12/bill/2026-01")
    assert code == 200 and body["created"]
    code, invs = call(server, "GET", "/billing/sites/lindenweg-12/invoices?period=2026-01")
    n = next(v["number"] for v in invs if v["account"] == "muster")
    base = f"/billing/sites/lindenweg-12/invoices/{n}"
    code, v = call(server, "POST", base + "/pay", {"amount": "10.00"})
    assert code == 409 and "payments go to issued" in v["detail"]
    code, v = call(server, "POST", base + "/pay", {"date": "2026-02-03"})
    assert code == 422 and v["detail"][0]["loc"] == ["body", "amount"]  # was 409 (issue 17)
    code, v = call(server, "POST", base + "/issue", {"date": date(2026, 2, 2)})
    assert code == 200 and v["state"] == "issued"
    code, v = call(server, "POST", base + "/pay", {"amount": "10.00", "date": "2026-02-03"})
    assert code == 200 and D(v["balance"]) == D(v["total_due"]) - D("10.00")
    # A partial credit note over HTTP: 1 kWh of line 1 at its unit price; line 99 refused.
    code, body = call(server, "POST", base + "/credit", {"lines": [{"line": 99}]})
    assert code == 409 and "has no line 99" in body["detail"]
    code, c = call(server, "POST", base + "/credit",
                   {"date": "2026-02-04", "lines": [{"line": 1, "quantity": "1"}]})
    assert code == 200, c
    ln = c["credit_note"]["document"]["lines"][0]
    assert (ln["credits_line"], ln["quantity"]) == (1, "-1")
    assert D(ln["amount"]) == -D(ln["unit_price"]).quantize(D("0.01"), ROUND_HALF_UP)
    assert D(c["invoice"]["balance"]) == \
        D(v["total_due"]) - D("10.00") + D(c["credit_note"]["total_due"])
    code, e = call(server, "GET", base + "/explain")
    assert code == 200 and e["lines"][0]["source"]["meters"][0]["meter"] == "apt-1"
    code, raw = call(server, "GET", base + "/pdf")
    assert code == 200 and raw[:5] == b"%PDF-"
    code, ov = call(server, "GET", "/billing/sites/lindenweg-12/overview?period=2026-01")
    assert ov["in_progress"] == 1 and ov["collected"] == "10.00"
    code, body = call(server, "GET", "/billing/sites/nowhere/invoices")
    assert code == 404
    code, spec = call(server, "GET", "/openapi.json")
    assert "/billing/sites/{site}/invoices/{number}/{action}" in spec["paths"]


def test_api_readings_import(server) -> None:
    """The CLI's readings import over HTTP: checked, all or nothing, 422 with every
    problem; then billed (example site, apt-1: 0.25 kWh a quarter-hour from the fixture)."""
    model = tomllib.loads(EXAMPLE.read_text())
    assert call(server, "PUT", "/billing/sites", model)[0] == 200
    path = "/billing/sites/lindenweg-12/readings"
    code, body = call(server, "POST", path, {"entered_by": "Meier", "readings": [
        {"meter": "nope", "timestamp": "2026-01-10T00:00", "value": "1", "unit": "kWh"}]})
    assert (code, body["detail"]["errors"]) == (422, ["readings.json[1]: unknown meter 'nope'"])
    code, body = call(server, "POST", path, {"entered_by": "Meier", "surprise": 1,
                                             "readings": []})
    assert code == 422  # unknown fields are an error
    # A utility's reading between two of the gateway's (216.000 at 00:00, 216.250 at 00:15).
    code, body = call(server, "POST", path, {"entered_by": "EW Zürich", "source": "utility",
                                             "readings": [
        {"meter": "apt-1", "timestamp": "2026-01-10T00:07", "value": "216.03", "unit": "kWh",
         "note": "Ablesung EW"}]})
    assert code == 200, body
    assert (body["imported"], body["skipped"]) == (1, 0)
