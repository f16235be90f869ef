"""Bills that must be impossible (issue 14, guards): a window billed twice, a period that
has not ended, estimates that depend on the window billed, a database never migrated,
sessions without a believable energy, one bad stored value; and the one period parser
(issue 17). Amounts are worked out by hand in the comments."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import insert

from sitegate.cloud.billing import ledger
from sitegate.cloud.billing.billing_run import BillingRefused, bill
from sitegate.cloud.billing.explain import explain, explain_text
from sitegate.cloud.billing.periods import PeriodError, parse_period
from sitegate.cloud.billing.sites import save_site
from sitegate.cloud.billing.units import kwh_to_units
from sitegate.cloud.cli import main
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.cloud.store.tables import readings as readings_table
from sitegate.cloud.store.tables import session_latest

QUARTER = D("0.25")  # kWh every 15 min


def amounts(conn, number: int) -> tuple[list[tuple[str, str]], str]:
    doc = ledger.view(conn, ledger.get_row(conn, "lindenweg", number))["document"]
    return [(ln["quantity"], ln["amount"]) for ln in doc["lines"]], doc["total_due"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --- one period parser ----------------------------------------------------------------------


def test_period_forms() -> None:
    assert (parse_period("2026-02").first, parse_period("2026-02").end) == \
        (date(2026, 2, 1), date(2026, 3, 1))
    p = parse_period("2026-01-15..2026-02-14")  # both days included: 31 days
    assert (p.first, p.end, (p.end - p.first).days) == (date(2026, 1, 15), date(2026, 2, 15), 31)
    for bad, why in (("2026-13", "month 13 is not 01..12"), ("2026-00", "month 00"),
                     ("2026-Q5", "expected"), ("2026-02-10..2026-02-01", "ends before"),
                     ("2026-02-30..2026-03-01", "not a date"), ("", "expected")):
        with pytest.raises(PeriodError, match=why):
            parse_period(bad)


@pytest.fixture
def store(tmp_path, site, register, put_readings):
    """A migrated SQLite file with the one-flat site and Q1 2026 at 0.25 kWh / 15 min."""
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    engine = make_engine(db)
    model = site()
    with engine.begin() as conn:
        save_site(conn, model)
        put_readings(conn, "gw-1", "m1", register("2026-Q1", lambda i: QUARTER))
    engine.dispose()
    return db


@pytest.mark.parametrize("argv", [
    ("bill",), ("export",), ("invoice", "list"), ("invoice", "overview"), ("invoice", "late"),
])
def test_bad_period_refused_by_every_command(capsys, store, argv) -> None:
    code, out, err = run(capsys, *argv, "--db", store, "--period", "2026-13")
    assert (code, out) == (2, "")
    assert err == "error: bad period '2026-13': month 13 is not 01..12\n"


def test_overview_without_period_says_all_periods(capsys, store) -> None:
    code, out, _ = run(capsys, "invoice", "overview", "--db", store)
    assert code == 0
    assert "period       all periods\n" in out and "None" not in out
    code, out, _ = run(capsys, "invoice", "overview", "--db", store, "--json")
    assert json.loads(out)["period"] is None


def test_arbitrary_window_billed(capsys, store) -> None:
    # 1..10 January: 10 days x 96 intervals x 0.25 kWh = 240 kWh x 0.30 = 72.00;
    # VAT 8.1 %: 5.832 -> 5.83; gross 77.83 -> due 77.85 (0.05 cash rounding)
    code, out, err = run(capsys, "bill", "--db", store, "--period", "2026-01-01..2026-01-10",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["period"] == "2026-01-01..2026-01-10"
    engine = make_engine(store)
    with engine.connect() as conn:
        assert amounts(conn, 1) == ([("240.000", "72.00")], "77.85")
    engine.dispose()
    code, out, _ = run(capsys, "invoice", "list", "--db", store, "--period",
                       "2026-01-01..2026-01-10", "--json")
    assert [v["number"] for v in json.loads(out)] == [1]


# --- a service period is invoiced once ------------------------------------------------------


def test_overlapping_window_refused_naming_the_invoice(db, site, register, put_readings) -> None:
    model = site()
    with db.begin() as conn:
        save_site(conn, model)
        put_readings(conn, "gw-1", "m1", register("2026-Q1", lambda i: QUARTER))
        assert bill(conn, model, "2026-01")["created"] == [1]
        assert bill(conn, model, "2026-02")["created"] == [2]  # next to it: fine
        assert bill(conn, model, "2026-01")["unchanged"] == [1]  # the same period: re-billed
    for window in ("2026-Q1", "2025-12-01..2026-01-31", "2026-01-15..2026-02-14"):
        with db.begin() as conn, pytest.raises(BillingRefused) as exc:
            bill(conn, model, window)
        assert "invoice 1 (2026-01, anna, draft)" in str(exc.value)
    with db.begin() as conn, pytest.raises(BillingRefused) as exc:
        bill(conn, model, "2026-01-15..2026-02-14")
    assert str(exc.value) == (
        "period 2026-01-15..2026-02-14 overlaps invoice 1 (2026-01, anna, draft), invoice 2 "
        "(2026-02, anna, draft): a service period is invoiced once; cancel or credit it first")

    # Invoice 1 issued and credited in full, invoice 2 cancelled: Q1 may be billed.
    with db.begin() as conn:
        ledger.issue(conn, model, 1, date(2026, 4, 2), datetime(2026, 4, 2, tzinfo=UTC))
        ledger.credit(conn, model, 1, date(2026, 4, 3))  # credit note 3
        ledger.cancel(conn, model, 2, date(2026, 4, 3))
        r = bill(conn, model, "2026-Q1")
    assert r["created"] == [4]
    # Q1: January 2,976 + February 2,688 + March 2,972 intervals (29 March has 23 h) =
    # 8,636 x 0.25 = 2,159 kWh x 0.30 = 647.70; VAT 52.4637 -> 52.46; 700.16 -> 700.15
    with db.connect() as conn:
        assert amounts(conn, 4) == ([("2159.000", "647.70")], "700.15")


def test_partly_credited_invoice_still_blocks(db, site, register, put_readings) -> None:
    model = site()
    with db.begin() as conn:
        save_site(conn, model)
        put_readings(conn, "gw-1", "m1", register("2026-Q1", lambda i: QUARTER))
        bill(conn, model, "2026-01")
        ledger.issue(conn, model, 1, date(2026, 2, 2), datetime(2026, 2, 2, tzinfo=UTC))
        ledger.credit(conn, model, 1, date(2026, 2, 3), net="10.00")
    with db.begin() as conn, pytest.raises(BillingRefused, match=r"invoice 1 \(2026-01, anna, "
                                                                 r"issued\)"):
        bill(conn, model, "2026-Q1")


# --- a period that has not ended ------------------------------------------------------------


def test_unended_period_refused_unless_interim(db, site, register, put_readings) -> None:
    model = site()
    with db.begin() as conn:
        save_site(conn, model)
        put_readings(conn, "gw-1", "m1", register("2026-12", lambda i: QUARTER))
    with db.begin() as conn, pytest.raises(BillingRefused) as exc:
        bill(conn, model, "2026-12", today=date(2026, 12, 31))  # its last day: not ended
    assert str(exc.value) == ("period 2026-12 has not ended (its last day is 2026-12-31): "
                              "bill it after that, or ask for an interim bill (--interim)")
    with db.begin() as conn:
        r = bill(conn, model, "2026-12", interim=True, today=date(2026, 12, 10))
        assert (r["created"], r["interim"]) == ([1], True)
        # December: 31 x 96 = 2,976 intervals x 0.25 = 744 kWh x 0.30 = 223.20;
        # VAT 18.0792 -> 18.08; 241.28 -> 241.30
        assert amounts(conn, 1) == ([("744.000", "223.20")], "241.30")
        v = ledger.view(conn, ledger.get_row(conn, "lindenweg", 1))
    assert v["document"]["interim"] is True
    assert explain_text(explain(v)).startswith("Interim invoice 1 (draft) anna 2026-12")
    with db.begin() as conn:  # once ended, the same period bills as usual
        assert bill(conn, model, "2026-11", today=date(2026, 12, 1))["interim"] is False


def test_unended_period_cli(capsys, store) -> None:
    code, out, err = run(capsys, "bill", "--db", store, "--period", "2099-06")
    assert (code, out) == (2, "")
    assert err.startswith("error: period 2099-06 has not ended (its last day is 2099-06-30)")
    code, out, err = run(capsys, "bill", "--db", store, "--period", "2099-06", "--interim")
    assert code == 0 and "2099-06 (interim): created []" in out


# --- estimation is the same whatever window is billed ---------------------------------------


def _two_hand_noted(conn) -> None:
    """Two readings only: 0 kWh at 15 Dec 2025 00:00 (local, 14 Dec 23:00 UTC) and
    2,903 kWh at 15 Apr 2026 00:00 (local, CEST: 14 Apr 22:00 UTC). Between them are
    121 days less the hour lost on 29 March: 2,903 h, so the estimate is 1 kWh an hour."""
    rows = [(datetime(2025, 12, 14, 23, tzinfo=UTC), D(0)),
            (datetime(2026, 4, 14, 22, tzinfo=UTC), D(2903))]
    conn.execute(insert(readings_table), [
        {"gateway_id": "gw-1", "seq": k + 1, "meter_id": "m1", "ts": ts,
         "quantity": "1-0:1.8.0", "value": str(v), "unit": "kWh", "quality": "good",
         "flags": "[]", "received_at": datetime(2026, 4, 20, tzinfo=UTC)}
        for k, (ts, v) in enumerate(rows)])


def test_estimate_independent_of_window(db, tmp_path, site) -> None:
    model = site()
    other = str(tmp_path / "other.db")
    upgrade(other)
    q1_db = make_engine(other)
    for engine in (db, q1_db):
        with engine.begin() as conn:
            save_site(conn, model)
            _two_hand_noted(conn)
    with db.begin() as conn:
        for month in ("2026-01", "2026-02", "2026-03"):
            bill(conn, model, month)
    with q1_db.begin() as conn:
        bill(conn, model, "2026-Q1")
    # 1 kWh an hour: January 744 h, February 672 h, March 743 h (29 March has 23 h).
    # x 0.30: 223.20, 201.60, 222.90 (VAT 18.08, 16.33, 18.05; due 241.30, 217.95, 240.95)
    with db.connect() as conn:
        months = [amounts(conn, n) for n in (1, 2, 3)]
        v = ledger.view(conn, ledger.get_row(conn, "lindenweg", 1))
    assert months == [([("744.000", "223.20")], "241.30"), ([("672.000", "201.60")], "217.95"),
                      ([("743.000", "222.90")], "240.95")]
    # Q1 in one bill: 744 + 672 + 743 = 2,159 kWh, the same as the three months;
    # x 0.30 = 647.70; VAT 52.4637 -> 52.46; 700.16 -> 700.15
    with q1_db.connect() as conn:
        assert amounts(conn, 1) == ([("2159.000", "647.70")], "700.15")
    q1_db.dispose()
    # Every interval is between the two readings: estimated, on the line and in explain.
    assert v["document"]["lines"][0]["estimated"] is True
    e = explain(v)
    assert e["lines"][0]["estimated"] is True
    text = explain_text(e)
    assert "744.000 kWh x 0.30 = 223.20  (VAT 8.1 %)  ESTIMATED" in text
    assert "2976 intervals" in text and "2976 estimated, 0 missing" in text


# --- a database never migrated --------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ("bill", "--period", "2026-01"), ("invoice", "list"), ("invoice", "overview"),
    ("invoice", "show", "1"), ("export",), ("site", "show"), ("readings",), ("gateways",),
    ("dead-letters",),
])
def test_unmigrated_database_says_what_to_run(capsys, tmp_path, argv) -> None:
    path = tmp_path / "empty.db"
    make_engine(str(path)).connect().close()  # an SQLite file without tables
    code, out, err = run(capsys, *argv, "--db", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: database {path} is not migrated (schema ")
    assert err.endswith(f"missing): run 'sitegate-cloud migrate --db {path}'\n")
    assert "Traceback" not in err
    missing = tmp_path / "nothing-here.db"
    code, out, err = run(capsys, *argv, "--db", str(missing))
    assert (code, err) == (2, f"error: no database at {missing}: create it with "
                              f"'sitegate-cloud migrate --db {missing}'\n")
    assert not missing.exists()  # a mistyped path is not created


def test_site_import_migrates_a_new_database(capsys, tmp_path) -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config/examples/site-lindenweg.toml"
    db = str(tmp_path / "new.db")
    code, out, err = run(capsys, "site", "import", "--db", db, str(example))
    assert code == 0, err
    code, out, err = run(capsys, "invoice", "list", "--db", db, "--json")
    assert (code, json.loads(out)) == (0, [])


# --- sessions through the protocol model; bad stored values ---------------------------------

SESSION_SITE = {
    "meter_assignments": [], "badges": [{"tag": "04A1B2", "account": "anna"}],
    "session_tariffs": [{"kind": "ev", "valid_from": "2025-01-01", "label": "Laden",
                         "per_kwh": "0.45", "per_session": "1.00"}],
}


def _session(sid: str, payload: str, stop: datetime) -> dict:
    return {"gateway_id": "gw-1", "session_id": sid, "completed": True, "epoch": "0",
            "seq": 1, "payload": payload, "stopped_at": stop,
            "received_at": datetime(2026, 2, 1, tzinfo=UTC)}


def _record(sid: str, start: str, stop: str, **energy: str) -> str:
    return json.dumps({"session_id": sid, "charge_point": "cp-1", "connector": 1,
                       "badge": "04A1B2", "start": start, "stop": stop,
                       "meter_start_wh": "1000", "status": "completed",
                       "future_field": "ignored", **energy})


def test_sessions_without_believable_energy_are_issues(db, site) -> None:
    model = site(**SESSION_SITE)
    stop = datetime(2026, 1, 10, 12, tzinfo=UTC)
    rows = [
        _session("s1", _record("s1", "2026-01-10T10:00:00Z", "2026-01-10T12:00:00Z",
                               energy_wh="10000"), stop),
        _session("s2", _record("s2", "2026-01-10T10:00:00Z", "2026-01-10T12:00:00Z"), stop),
        _session("s3", _record("s3", "2026-01-10T11:00:00Z", "2026-01-10T12:00:00Z",
                               energy_wh="10000000"), stop),  # 10 MW for an hour
        _session("s4", _record("s4", "2026-01-10T10:00:00Z", "2026-01-10T12:00:00Z",
                               energy_wh="1E+999999"), stop),
        _session("s5", "{not json", stop),
        _session("s6", _record("s6", "2026-01-10T12:00:00Z", "2026-01-10T12:00:00Z",
                               energy_wh="0"), stop),  # 0 kWh in 0 s
        _session("s7", _record("s7", "2026-01-10T10:00:00Z", "2026-01-10T12:00:00Z",
                               meter_stop_wh="3000"), stop),  # 3000 - 1000 = 2000 Wh
        _session("s8", _record("s8", "2026-01-10T10:00:00Z", "2026-01-10T12:00:00Z",
                               meter_stop_wh="1000"), stop),  # plugged in 2 h, 0 Wh drawn
    ]
    with db.begin() as conn:
        save_site(conn, model)
        conn.execute(insert(session_latest), rows)
        r = bill(conn, model, "2026-01")
        # s1 10 kWh + s7 2 kWh = 12 kWh x 0.45 = 5.40; 2 sessions x 1.00 = 2.00;
        # net 7.40, VAT 8.1 %: 0.5994 -> 0.60; gross 8.00 -> due 8.00
        assert amounts(conn, 1) == ([("12", "5.40"), ("2", "2.00")], "8.00")
    issues = {i["meter"]: i["detail"] for i in r["summary"]["issues"]
              if i["kind"] == "unbilled_session"}
    assert sorted(issues) == ["gw-1/s2", "gw-1/s3", "gw-1/s4", "gw-1/s5", "gw-1/s6",
                              "gw-1/s8"]
    assert issues["gw-1/s2"] == "s2: no energy value (neither energy_wh nor meter_stop_wh)"
    assert issues["gw-1/s3"].startswith("s3: implausible energy 10000000 Wh in 3600 s")
    assert issues["gw-1/s4"].startswith("s4: implausible energy")
    assert issues["gw-1/s5"].startswith("not a session record")
    assert issues["gw-1/s6"].startswith("s6: implausible duration")
    assert issues["gw-1/s8"] == "s8: no energy delivered in 7200 s, not billed"


def test_one_absurd_reading_is_left_out_and_reported(db, site, register, put_readings) -> None:
    # Two flats; m1 stores one reading of 999,999,999,999.999 kWh in the middle of January
    # (fits the register type, but a rise of ~4e15 kW). It is left out and reported; the
    # boundary next to it reads its recorded value. Each flat: 744 kWh x 0.30 = 223.20,
    # VAT 18.08, due 241.30 (anna: apt-1, ben: apt-2).
    model = site(
        meters=[{"id": "m1", "gateway": "gw-1"}, {"id": "m2", "gateway": "gw-1"}],
        billing_points=[{"id": f"apt-{k}", "building": "b1", "name": f"Wohnung {k}",
                         "tariff": "res", "owner": "owner"} for k in (1, 2)],
        meter_assignments=[{"billing_point": f"apt-{k}", "meter": f"m{k}",
                            "from": "2025-01-01"} for k in (1, 2)],
        occupancy=[{"billing_point": "apt-1", "account": "anna", "from": "2024-06-01"},
                   {"billing_point": "apt-2", "account": "ben", "from": "2024-06-01"}])
    bad_ts = datetime(2026, 1, 15, 12, 7, tzinfo=UTC)
    with db.begin() as conn:
        save_site(conn, model)
        seq = 1
        for m in ("m1", "m2"):
            seq = put_readings(conn, "gw-1", m, register("2026-01", lambda i: QUARTER),
                               seq0=seq)
        conn.execute(insert(readings_table).values(
            gateway_id="gw-1", seq=seq, meter_id="m1", ts=bad_ts, quantity="1-0:1.8.0",
            value="999999999999.999", unit="kWh", quality="good", flags="[]",
            received_at=datetime(2026, 2, 1, tzinfo=UTC)))
        r = bill(conn, model, "2026-01")
        assert r["created"] == [1, 2]
        assert amounts(conn, 1) == ([("744.000", "223.20")], "241.30")
        assert amounts(conn, 2) == ([("744.000", "223.20")], "241.30")
    bad = [i for i in r["summary"]["issues"] if i["kind"] == "implausible"]
    assert [(i["meter"], i["at"]) for i in bad] == [("m1", "2026-01-15T12:07:00Z")]
    assert kwh_to_units(D("999999999999.999")) < 2**62  # the value itself fits the type
