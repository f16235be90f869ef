"""The console's pages over HTTP: the overview's figures worked out by hand, its filters,
the site page, the fleet, and the German labels."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

from console_kit import SITE, Browserless, Console

from sitegate.cloud.billing import ops
from sitegate.cloud.store.tables import events, gateways, readings


def _cells(html: str, row: str) -> list[str]:
    m = re.search(row + r"(.*?)</tr>", html, re.S)
    assert m, row
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>",
                                                                m[1], re.S)]


def _lifecycle(c: Console) -> None:
    """Anna: issued 2 Feb, 100.00 paid. Ben: issued 2 Feb, due 4 Mar (30 days); reminder 1
    on 10 Mar (fee 0.00, due 20 Mar), reminder 2 on 25 Mar (fee 20.00). Carl: cancelled."""
    a, b, k = c.numbers["anna"], c.numbers["ben"], c.numbers["carl"]
    ops.act(c.engine, SITE, a, "issue", date(2026, 2, 2))
    ops.act(c.engine, SITE, a, "pay", date(2026, 2, 10), amount="100.00")
    ops.act(c.engine, SITE, b, "issue", date(2026, 2, 2))
    ops.act(c.engine, SITE, b, "remind", date(2026, 3, 10))
    ops.act(c.engine, SITE, b, "remind", date(2026, 3, 25))
    ops.act(c.engine, SITE, k, "cancel", date(2026, 2, 2))


def test_overview_figures_and_filters(console: Console) -> None:
    _lifecycle(console)
    console.user("op@example.ch", "operator")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    _, html, _ = b.get(f"/web/sites/{SITE}/invoices")
    # Amount: Anna 223.20 (744 kWh x 0.30) + Ben 111.60 (372 kWh x 0.30) + 0.00 + 20.00
    # reminder fees = 354.80; Carl's cancelled 446.40 bills nothing. Collected: 100.00.
    # Balance: 223.20 - 100.00 + 131.60 = 254.80. Counts: 2 in progress, 1 cancelled,
    # Ben at reminder 2.
    assert _cells(html, r'<tr data-period="2026-01">') == [
        "2026-01", "354.80", "100.00", "254.80", "0", "2", "0", "1", "0", "0", "1", "0"]
    api = ops.overview(console.engine, SITE, "2026-01")  # what GET .../overview answers
    assert (api["amount"], api["collected"], api["balance"]) == ("354.80", "100.00", "254.80")
    # Haus B only (Carl's flat): one cancelled invoice, nothing billed
    _, html, _ = b.get(f"/web/sites/{SITE}/invoices?point=b-1&period=2026-01")
    assert _cells(html, r'<tr data-period="2026-01">') == [
        "2026-01", "0.00", "0.00", "0.00", "0", "0", "0", "1", "0", "0", "0", "0"]
    # drill down: reminder 2 of the whole site is Ben's invoice alone
    _, html, _ = b.get(f"/web/sites/{SITE}/invoices?period=2026-01&state=R2")
    rows = re.findall(r'<tr data-number="(\d+)">', html)
    assert rows == [str(console.numbers["ben"])]
    assert b.get(f"/web/sites/{SITE}/invoices?period=2026-13")[0] == 400
    assert b.get(f"/web/sites/{SITE}/invoices?state=lost")[0] == 400
    # the invoice page shows the trace and only the actions its state allows
    _, html, _ = b.get(f"/web/sites/{SITE}/invoices/{console.numbers['carl']}")
    assert "data-action" not in html and "m3 (gw-1/m3)" in html


def test_site_page_and_german_labels(console: Console) -> None:
    console.user("besitzer@example.ch", "owner", language="de")
    b = Browserless(console.url)
    assert b.login("besitzer@example.ch") == 303
    code, html, _ = b.get(f"/web/sites/{SITE}?meter=m2&day=2026-01-15")
    assert code == 200 and "Abrechnungspunkte" in html and "Der Tag in Viertelstunden" in html
    charts = [json.loads(x) for x in re.findall(
        r'<script type="application/json">(.*?)</script>', html, re.S)]
    day, month, year = charts
    # m2 grows 0.125 kWh each quarter hour: 96 quarters on 15 January, 31 days of 12 kWh
    assert len(day["x"]) == 96 and set(day["series"][0]) == {0.125}
    assert month["series"][0] == [12.0] * 31
    assert year["x"][-1] == "2026-01" and year["series"][0][-1] == 372.0
    _, html, _ = b.get(f"/web/sites/{SITE}/invoices")
    assert "Rechnungsübersicht" in html and "Saldo" in html and "Mahnung 3" in html
    # the header's switch: English from now on
    token = b.csrf(f"/web/sites/{SITE}/invoices")
    assert b.request("POST", "/web/language", {"language": "en", "csrf": token})[0] == 303
    assert "Invoices overview" in b.get(f"/web/sites/{SITE}/invoices")[1]


def test_fleet_shows_status_and_updates_in_place(console: Console) -> None:
    now = datetime(2026, 2, 1, 12, tzinfo=UTC)
    status = {"v": 1, "state": "online", "ts": "2026-02-01T11:00:00Z",
              "epoch": "20260101000000-ab12", "backlog": {"readings": 7, "sessions": 2},
              "config_rejected": {"version": 5, "error": "bad bus"}}
    with console.engine.begin() as conn:
        conn.execute(gateways.insert().values(gateway_id="gw-1", first_seen=now,
                                              last_seen=now, online=True,
                                              status=json.dumps(status),
                                              applied_config_version=4))
        conn.execute(gateways.insert().values(gateway_id="gw-stranger", first_seen=now,
                                              last_seen=now, online=False))
        conn.execute(events.insert().values(gateway_id="gw-1", seq=1, ts=datetime.now(UTC),
                                            kind="buffer_full", severity="alarm",
                                            payload="{}", received_at=datetime.now(UTC)))
    console.user("op@example.ch", "operator")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    _, html, _ = b.get("/web/fleet")
    assert 'hx-get="/web/fleet/rows"' in html and 'hx-trigger="every 10s"' in html
    row = _cells(html, r'<tr data-gateway="gw-1"[^>]*>')
    assert row[:3] == ["gw-1", SITE, "yes"] and row[5] == "9"
    assert row[6] == "20260101000000-ab12" and "version 5 refused" in row[7]
    assert row[8] == "1 · buffer_full (alarm)"
    assert "gw-stranger" not in html  # not of this operator's site
    code, rows, _ = b.get("/web/fleet/rows")
    assert code == 200 and rows.lstrip().startswith("<tbody")


def test_quality_page_lists_points_and_late_readings(console: Console) -> None:
    ops.act(console.engine, SITE, console.numbers["anna"], "issue", date(2026, 2, 2))
    # a reading of Anna's meter inside January that arrives after her invoice was issued
    with console.engine.begin() as conn:
        conn.execute(readings.insert().values(
            gateway_id="gw-1", seq=99_999, meter_id="m1",
            ts=datetime(2026, 1, 15, 10, 7, tzinfo=UTC), quantity="1-0:1.8.0",
            value="5324.200", unit="kWh", quality="good", flags="[]",
            received_at=datetime.now(UTC)))
    console.user("op@example.ch", "operator")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    code, html, _ = b.get(f"/web/sites/{SITE}/quality?period=2026-01")
    assert code == 200
    # three flats, each 2,976 quarter hours of January from 2,977 readings, none estimated
    assert "0 of 3 billed points" in html
    assert _cells(html, r'<tr class="">')[4:9] == ["2976", "0", "0", "0", "m1: 2977"]
    late = _cells(html, r'<table id="late">.*?<tbody><tr>')
    assert late[:2] == ["m1", str(console.numbers["anna"])]


def test_owners_statement_page_and_pdf(console: Console) -> None:
    """The year 2026 after _lifecycle, plus Anna's invoice written off on 1 April; all of it
    electricity. Billed 223.20 + 111.60 = 334.80 (cancelled Carl's 446.40 apart); collected 100.00;
    written off: Anna's open 223.20 - 100.00 = 123.20, borne by the owner; reminder fees
    0.00 + 20.00 = 20.00."""
    _lifecycle(console)
    ops.act(console.engine, SITE, console.numbers["anna"], "write-off", date(2026, 4, 1))
    console.user("owner@example.ch", "owner")
    b = Browserless(console.url)
    assert b.login("owner@example.ch") == 303
    code, html, _ = b.get(f"/web/sites/{SITE}/statement?year=2026")
    assert code == 200
    assert _cells(html, r'<tr data-solution="electricity">') == [
        "Electricity", "334.80", "0.00", "100.00", "123.20", "446.40"]
    assert "Reminder fees billed: CHF 20.00" in html
    code, pdf, headers = b.get(f"/web/sites/{SITE}/statement.pdf?year=2026")
    assert code == 200 and pdf[:5] == b"%PDF-"
    assert headers["content-type"] == "application/pdf"
    _, html, _ = b.get(f"/web/sites/{SITE}/statement?year=2025")
    assert "No invoices." in html


def test_statement_split_over_solutions_adds_up() -> None:
    """An invoice of 100.00 due with lines of 60.00 electricity and 30.00 + 10.00 laundry
    (net): 100.00 x 60/100 = 60.00 electricity, 100.00 x 40/100 = 40.00 laundry; a payment
    of 33.33 splits 33.33 x 0.4 = 13.332 -> 13.33 laundry, the rest 20.00 electricity."""
    from sitegate.cloud.web.statement import allocate, statement

    view = {"kind": "invoice", "state": "issued", "total_due": "100.00",
            "document": {"lines": [
                {"key": "energy", "unit": "kWh", "amount": "60.00", "source": "s1"},
                {"key": "laundry_per_session", "unit": "session", "amount": "30.00"},
                {"key": "laundry_per_kwh", "unit": "kWh", "amount": "10.00"}]},
            "events": [{"kind": "payment", "amount": "33.33"}]}
    st = statement([view])
    rows = {r["solution"]: r for r in st["rows"]}
    assert (rows["electricity"]["billed"], rows["laundry"]["billed"]) == (D("60.00"),
                                                                          D("40.00"))
    assert (rows["electricity"]["collected"], rows["laundry"]["collected"]) == (D("20.00"),
                                                                                D("13.33"))
    assert st["total"]["collected"] == D("33.33")
    assert allocate(D("0.01"), {"a": D(1), "b": D(1), "c": D(1)}) == {
        "a": D("0.00"), "b": D("0.00"), "c": D("0.01")}


def test_statement_counts_an_expense_statement_as_expense() -> None:
    """An expense statement ("expense:2025", its lines keyed by the period's categories, one
    in kWh of heat) is all "expense", whatever its lines' units: billed 1750.80 (net
    1000.00 + 750.78 = 1750.78, cash-rounded), 1000.00 collected; it counts in 2025, the
    year its accounting period starts, and a stay's settlement in no year."""
    from sitegate.cloud.web.statement import statement, year_of

    view = {"kind": "invoice", "state": "issued", "total_due": "1750.80",
            "period": "expense:2025",
            "document": {"kind": "expense_statement", "period_first": "2025-01-01", "lines": [
                {"key": "heizung.base", "unit": "kWh", "amount": "1000.00", "source": None},
                {"key": "warmwasser.consumption", "unit": "m³", "amount": "750.78"}]},
            "events": [{"kind": "payment", "amount": "1000.00"}]}
    st = statement([view])
    assert [(r["solution"], r["billed"], r["collected"]) for r in st["rows"]] == [
        ("expense", D("1750.80"), D("1000.00"))]
    assert year_of(view) == 2025
    assert year_of({"period": "2026-01", "document": {"kind": "invoice"}}) == 2026
    assert year_of({"period": "stay:2026-07-01..2026-07-14", "document": {}}) is None


def test_site_administration_status_issues_and_cost_bearers(console: Console) -> None:
    _lifecycle(console)  # Carl's invoice cancelled: its costs are the operator's
    console.user("op@example.ch", "operator")
    console.user("owner@example.ch", "owner")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    path = f"/web/sites/{SITE}/admin"
    token = b.csrf(path)
    assert b.request("POST", path + "/status", {"status": "commissioning",
                                                "csrf": token})[0] == 303
    assert b.request("POST", path + "/notes", {"kind": "issue", "csrf": token,
                                               "text": "Meter m3 sealed? Check it"})[0] == 303
    code, html, _ = b.get(path)
    assert "<strong>commissioning</strong>" in html and "Notes and open issues (1)" in html
    note = re.search(r'/admin/notes/(\d+)/close', html)[1]
    assert _cells(html, r'<table id="borne">.*?<tbody><tr>')[3:5] == ["cancelled",
                                                                      "the operator"]
    assert "<tr><td>operator</td><td>Op</td><td>op@example.ch</td></tr>" in html
    # the owner reads all of it and changes nothing
    o = Browserless(console.url)
    assert o.login("owner@example.ch") == 303
    assert o.get(path)[0] == 200
    otoken = o.csrf(path)
    assert o.request("POST", path + f"/notes/{note}/close", {"csrf": otoken})[0] == 403
    assert b.request("POST", path + f"/notes/{note}/close", {"csrf": token})[0] == 303
    assert "Notes and open issues (0)" in b.get(path)[1]
    assert b.request("POST", path + "/status", {"status": "lost", "csrf": token})[0] == 400


def test_a_running_bucket_ends_at_its_newest_reading(console: Console) -> None:
    """Anna's register: 5000 kWh on 1 January 2026, +0.25 kWh a quarter hour up to its last
    reading at midnight of 1 February: a bucket from 1 January to a day still to come is
    the 744 kWh so far; a bucket wholly in the future is empty, not zero."""
    from sitegate.cloud.web.consumption import energy
    from sitegate.cloud.web.models import site_model

    model = site_model(console.engine, SITE)
    assert energy(console.engine, model, "m1",
                  [date(2026, 1, 1), date(2099, 1, 1), date(2099, 2, 1)]) == [D("744.00"),
                                                                              None]


def test_site_page_lists_sessions_with_the_badge_holder(console: Console) -> None:
    from sitegate.cloud.store.tables import session_latest

    start = datetime(2026, 1, 20, 18, tzinfo=UTC)
    with console.engine.begin() as conn:
        conn.execute(session_latest.insert().values(
            gateway_id="gw-1", session_id="s-1", completed=False, epoch="0", seq=1,
            payload="{}", charge_point_id="CP-1", connector=1, badge="ANNA0001",
            started_at=start, energy_wh="7250", received_at=start))
    console.user("op@example.ch", "operator")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    _, html, _ = b.get(f"/web/sites/{SITE}")
    assert _cells(html, r'<table id="site-sessions">.*?<tbody><tr class="running">') == [
        "2026-01-20 18:00 UTC", "running", "CP-1/1", "ANNA0001", "Anna Muster", "7.25"]


def test_site_page_shows_the_solar_community_month(console: Console) -> None:
    """A second site with a grid meter and a PV meter, January 2026 (2,976 quarter hours):
    PV produces 0.1 kWh a quarter = 297.6 kWh; the grid meter takes in 0.2 = 595.2 kWh and
    feeds out 0.04 = 119.04 kWh. Used in the building 297.6 - 119.04 = 178.56 kWh;
    autonomy 178.56 / (178.56 + 595.2) = 23.08 % -> 23.1 %."""
    import copy

    from console_kit import MODEL

    model = copy.deepcopy(MODEL)
    model["site"].update(id="sun", gateways=["gw-2"], grid_meter="g", pv_meters=["pv"])
    model["meters"] += [{"id": "g", "gateway": "gw-2"}, {"id": "pv", "gateway": "gw-2"}]
    ops.import_site(console.engine, model)
    first = datetime(2025, 12, 31, 23, tzinfo=UTC)
    rows, seq = [], 1
    for meter, quantity, per in (("g", "1-0:1.8.0", D("0.2")), ("g", "1-0:2.8.0", D("0.04")),
                                 ("pv", "1-0:2.8.0", D("0.1"))):
        for k in range(2977):
            rows.append({"gateway_id": "gw-2", "seq": seq, "meter_id": meter,
                         "ts": first + timedelta(minutes=15 * k), "quantity": quantity,
                         "value": str(per * k), "unit": "kWh", "quality": "good",
                         "flags": "[]", "received_at": first})
            seq += 1
    with console.engine.begin() as conn:
        conn.execute(readings.insert(), rows)
    console.user("op@example.ch", "operator", site="*")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    _, html, _ = b.get("/web/sites/sun?day=2026-01-10")
    facts = re.search(r'<dl class="facts" id="solar">(.*?)</dl>', html, re.S)[1]
    values = [re.sub(r"\s+", " ", v).strip() for v in re.findall(r"<dd>(.*?)</dd>", facts)]
    assert values == ["297.6 kWh", "178.56 kWh", "119.04 kWh", "595.2 kWh", "23.1 %"]
