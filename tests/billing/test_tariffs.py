"""The richer tariff model (issue 14 part 4), worked by hand: statutory VAT as dated data
(a change in the middle of an arbitrary period, one tariff), a demand charge on the
month's highest 15-minute power, the solar price capped at a reference price, and the
negative-solar case flagged."""

from __future__ import annotations

from decimal import Decimal as D

from sitegate.cloud.billing.compute import bill_site
from sitegate.cloud.billing.explain import explain, explain_text
from sitegate.cloud.billing.periods import parse_period

IMP, EXP = "1-0:1.8.0", "1-0:2.8.0"
JAN = parse_period("2026-01")


def lines(doc) -> list[tuple]:
    return [(ln["key"], ln["from"], ln["to"], ln["quantity"], ln["amount"], ln["vat_rate"])
            for ln in doc["lines"]]


def test_vat_change_inside_an_arbitrary_period_without_a_second_tariff(site, register):
    # One tariff version; its energy and fee name the category "standard", whose rate is
    # 7.7 % until 15 January and 8.1 % from 16 January 2026.
    model = site(
        vat_rates=[{"category": "standard", "from": "2018-01-01", "rate": "7.7"},
                   {"category": "standard", "from": "2026-01-16", "rate": "8.1"}],
        tariffs=[{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "energy", "label": "Strom", "price": "0.30", "vat_category": "standard"}],
            "fees": [{"key": "meter", "label": "Messgebühr", "monthly": "6.20",
                      "vat_category": "standard"}]}]}])
    period = parse_period("2026-01-01..2026-01-31")
    doc = bill_site(model, period, {"m1": {IMP: register("2026-01", lambda i: D("0.25"))}}
                    ).documents["anna"]
    # 1-15 Jan: 15 x 96 x 0.25 = 360 kWh x 0.30 = 108.00 at 7.7 %; 16-31 Jan: 384 kWh =
    # 115.20 at 8.1 %. Fee 6.20: 15/31 = 3.00 at 7.7 %, 16/31 = 3.20 at 8.1 %.
    assert lines(doc) == [
        ("energy", "2026-01-01", "2026-01-16", "360.000", "108.00", "7.7"),
        ("energy", "2026-01-16", "2026-02-01", "384.000", "115.20", "8.1"),
        ("meter", "2026-01-01", "2026-01-16", "15/31", "3.00", "7.7"),
        ("meter", "2026-01-16", "2026-02-01", "16/31", "3.20", "8.1"),
    ]
    # VAT per rate: 7.7 % of 111.00 = 8.547 -> 8.55; 8.1 % of 118.40 = 9.5904 -> 9.59;
    # net 229.40 + 18.14 = 247.54 -> due 247.55 (0.05 cash rounding)
    assert doc["vat"] == [{"rate": "7.7", "net": "111.00", "vat": "8.55"},
                          {"rate": "8.1", "net": "118.40", "vat": "9.59"}]
    assert (doc["net_total"], doc["vat_total"], doc["total_due"]) == \
        ("229.40", "18.14", "247.55")


def test_unknown_vat_category_is_a_site_error(site):
    import pytest

    from sitegate.cloud.billing.sitemodel import SiteModelError

    with pytest.raises(SiteModelError) as exc:
        site(tariffs=[{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "energy", "label": "Strom", "price": "0.30", "vat_category": "reduced"}]}]}])
    assert exc.value.errors == ["tariffs[0].versions[0].components[0].vat_category: no "
                                "vat_rates of category 'reduced'"]


def test_demand_charge_on_the_months_highest_quarter_hour(site, register):
    model = site(tariffs=[{"id": "res", "versions": [{"valid_from": "2025-01-01",
        "components": [{"key": "energy", "label": "Strom", "price": "0.30"}],
        "demand": [{"key": "power", "label": "Leistung", "price": "12.00"}]}]}])
    # 0.25 kWh every quarter hour (1 kW), except interval 1000 (11 Jan, 10:00 local):
    # 2.5 kWh in 15 min = 10 kW, the month's highest 15-minute average power.
    reg = register("2026-01", lambda i: D("2.5") if i == 1000 else D("0.25"))
    doc = bill_site(model, JAN, {"m1": {IMP: reg}}).documents["anna"]
    # energy: 2,975 x 0.25 + 2.5 = 746.25 kWh x 0.30 = 223.875 -> 223.88;
    # power: 10 kW x 12.00 = 120.00; net 343.88, VAT 8.1 %: 27.85428 -> 27.85;
    # gross 371.73 -> due 371.75
    assert lines(doc) == [
        ("energy", "2026-01-01", "2026-02-01", "746.250", "223.88", "8.1"),
        ("power", "2026-01-01", "2026-02-01", "10.000", "120.00", "8.1"),
    ]
    assert doc["lines"][1]["unit"] == "kW"
    assert doc["lines"][1]["peak_at"] == "2026-01-11T09:00:00Z"
    assert doc["total_due"] == "371.75"


def _community(site, cap: str | None):
    extra = {"grid_meter": "main"} | ({"solar_reference_price": cap} if cap else {})
    return site(
        site_extra=extra,
        meters=[{"id": "m1", "gateway": "gw-1"}, {"id": "main", "gateway": "gw-1"}],
        tariffs=[{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "solar", "label": "Solarstrom", "applies": "solar", "price": "0.25"},
            {"key": "grid", "label": "Netzstrom", "applies": "grid", "price": "0.30"}]}]}])


def test_solar_price_capped_at_the_reference_price(site, register):
    model = _community(site, "0.20")
    readings = {"m1": {IMP: register("2026-01", lambda i: D("0.25"))},
                "main": {IMP: register("2026-01", lambda i: D("0.15")),
                         EXP: register("2026-01", lambda i: D(0))}}
    run = bill_site(model, JAN, readings)
    doc = run.documents["anna"]
    # per quarter hour the flat uses 0.25 kWh, 0.15 of it from the grid: 0.10 solar.
    # January, 2,976 intervals: solar 297.6 kWh at min(0.25, 0.20) = 0.20 -> 59.52;
    # grid 446.4 kWh x 0.30 = 133.92; net 193.44, VAT 15.66864 -> 15.67; 209.11 -> 209.10
    assert [(ln["key"], ln["quantity"], ln["unit_price"], ln["amount"])
            for ln in doc["lines"]] == [("solar", "297.600", "0.20", "59.52"),
                                        ("grid", "446.400", "0.30", "133.92")]
    assert doc["lines"][0]["capped_from"] == "0.25"
    assert doc["total_due"] == "209.10"
    uncapped = bill_site(_community(site, "0.28"), JAN, readings).documents["anna"]
    assert uncapped["lines"][0]["amount"] == "74.40"  # 297.6 x 0.25: below the cap


def test_negative_solar_is_flagged(site, register):
    model = _community(site, None)
    # The grid meter imports 0.30 kWh a quarter hour, the flat's meter counted 0.25:
    # 0.05 kWh more than the consumers used each interval, solar would be negative.
    readings = {"m1": {IMP: register("2026-01", lambda i: D("0.25"))},
                "main": {IMP: register("2026-01", lambda i: D("0.30")),
                         EXP: register("2026-01", lambda i: D(0))}}
    run = bill_site(model, JAN, readings)
    # all 744 kWh as grid: 744 x 0.30 = 223.20; no solar line
    assert [(ln["key"], ln["quantity"], ln["amount"]) for ln in
            run.documents["anna"]["lines"]] == [("grid", "744.000", "223.20")]
    neg = [i for i in run.issues if i.kind == "negative_solar"]
    assert len(neg) == 1 and neg[0].meter == "main"
    # 2,976 intervals x 0.05 kWh = 148.8 kWh unexplained
    assert neg[0].detail.startswith("2976 intervals import more from the grid")
    assert neg[0].detail.endswith("148.800 kWh unexplained")


def test_explain_says_capped_and_power(site, register):
    from sitegate.cloud.billing.ledger import view_of

    model = _community(site, "0.20")
    readings = {"m1": {IMP: register("2026-01", lambda i: D("0.25"))},
                "main": {IMP: register("2026-01", lambda i: D("0.15")),
                         EXP: register("2026-01", lambda i: D(0))}}
    doc = bill_site(model, JAN, readings).documents["anna"]
    row = {"number": 1, "site_id": "lindenweg", "kind": "invoice", "account_id": "anna",
           "period": "2026-01", "state": "draft", "reminder_level": 0, "issue_date": None,
           "due_date": None, "total_due": doc["total_due"], "borne_by": None,
           "document": __import__("json").dumps(doc)}
    text = explain_text(explain(view_of(row, [])))
    assert "solar price 0.25 capped at the reference price 0.20" in text


def test_water_bill_in_cubic_metres(db, site, register, put_readings):
    """A flat's cold water meter (m³, its own register and tariff) beside its electricity
    meter, through the store: readings stored in m³, billed in m³, outside the solar
    community's sums."""
    from sitegate.cloud.billing import ledger
    from sitegate.cloud.billing.billing_run import bill
    from sitegate.cloud.billing.sites import save_site

    model = site(
        site_extra={"grid_meter": "main"},
        meters=[{"id": "m1", "gateway": "gw-1"}, {"id": "main", "gateway": "gw-1"},
                {"id": "w1", "gateway": "gw-1", "medium": "water",
                 "import_quantity": "volume"}],
        billing_points=[
            {"id": "apt-1", "building": "b1", "name": "Wohnung 1", "tariff": "res",
             "owner": "owner"},
            {"id": "apt-1-water", "building": "b1", "name": "Wohnung 1 Kaltwasser",
             "tariff": "water", "owner": "owner"}],
        meter_assignments=[
            {"billing_point": "apt-1", "meter": "m1", "from": "2025-01-01"},
            {"billing_point": "apt-1-water", "meter": "w1", "from": "2025-01-01"}],
        occupancy=[{"billing_point": bp, "account": "anna", "from": "2024-06-01"}
                   for bp in ("apt-1", "apt-1-water")],
        tariffs=[
            {"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
                {"key": "grid", "label": "Strom", "applies": "grid", "price": "0.30"},
                {"key": "solar", "label": "Solarstrom", "applies": "solar",
                 "price": "0.20"}]}]},
            {"id": "water", "versions": [{"valid_from": "2025-01-01", "components": [
                {"key": "water", "label": "Kaltwasser", "price": "2.50", "vat": "2.6"}]}]}])
    with db.begin() as conn:
        save_site(conn, model)
        seq = put_readings(conn, "gw-1", "m1", register("2026-01", lambda i: D("0.25")))
        # the grid meter imports all the flat uses: no solar
        seq = put_readings(conn, "gw-1", "main", register("2026-01", lambda i: D("0.25")),
                           seq0=seq)
        seq = put_readings(conn, "gw-1", "main", register("2026-01", lambda i: D(0)), EXP,
                           seq0=seq)
        w = register("2026-01", lambda i: D("0.005"))  # 5 litres every quarter hour
        rows = [(t, v) for t, v in w]
        from datetime import UTC, datetime

        from sqlalchemy import insert

        from sitegate.cloud.billing.units import units_to_kwh
        from sitegate.cloud.store.tables import readings
        conn.execute(insert(readings), [
            {"gateway_id": "gw-1", "seq": seq + k, "meter_id": "w1",
             "ts": datetime.fromtimestamp(t, UTC), "quantity": "volume",
             "value": str(units_to_kwh(v)), "unit": "m³", "quality": "good", "flags": "[]",
             "received_at": datetime(2026, 2, 1, tzinfo=UTC)} for k, (t, v) in enumerate(rows)])
        r = bill(conn, model, "2026-01")
        doc = ledger.view(conn, ledger.get_row(conn, "lindenweg", r["created"][0]))["document"]
    # electricity 2,976 x 0.25 = 744 kWh from the grid x 0.30 = 223.20 (8.1 %);
    # water 2,976 x 0.005 = 14.88 m³ x 2.50 = 37.20 (2.6 %);
    # VAT 18.0792 -> 18.08 and 0.9672 -> 0.97; 260.40 + 19.05 = 279.45 due
    assert [(ln["key"], ln["quantity"], ln["unit"], ln["amount"], ln["vat_rate"])
            for ln in doc["lines"]] == [("grid", "744.000", "kWh", "223.20", "8.1"),
                                        ("water", "14.880", "m³", "37.20", "2.6")]
    assert doc["total_due"] == "279.45"
    # the community's consumption is the electricity alone
    assert r["summary"]["energy_kwh"]["consumption"] == "744.000"
    assert not [i for i in r["summary"]["issues"] if i["kind"] == "negative_solar"]
