"""Readings from outside the gateway (issue 14 part 3): a CSV of hand-noted readings
imported and billed, what explain shows of them, every problem of a bad file at once, a
duplicate import, and a gateway reading beating a hand-noted one at the same instant."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal as D

import pytest

from sitegate.cloud.billing.sites import save_site
from sitegate.cloud.cli import main
from sitegate.cloud.store.db import make_engine, upgrade


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def store(tmp_path, site):
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    engine = make_engine(db)
    with engine.begin() as conn:
        save_site(conn, site())
    engine.dispose()
    return db


# Two hand-noted readings, local time (Europe/Zurich): 15 Dec 2025 00:00 (CET) and
# 15 Apr 2026 00:00 (CEST): 121 days less the hour lost on 29 March = 2,903 h apart.
HAND_NOTED = """meter,quantity,timestamp,value,unit,source,note
m1,,2025-12-15T00:00,0,kWh,manual,Einzug Anna
m1,1-0:1.8.0,2026-04-15T00:00,2903000,Wh,photo,Foto vom Techniker
"""


def test_csv_of_hand_noted_readings_billed(capsys, store, tmp_path) -> None:
    f = tmp_path / "ablesung.csv"
    f.write_text(HAND_NOTED, encoding="utf-8")
    code, out, err = run(capsys, "readings", "import", str(f), "--db", store,
                         "--by", "Hauswart Meier")
    assert (code, err) == (0, "")
    assert out == "imported 2 readings from ablesung.csv (0 already there)\n"
    code, out, _ = run(capsys, "readings", "import", str(f), "--db", store, "--by", "Meier",
                       "--json")
    assert json.loads(out)["imported"] == 0 and json.loads(out)["skipped"] == 2

    # 2,903 kWh over 2,903 h: 1 kWh an hour. January: 744 h = 744 kWh x 0.30 = 223.20;
    # VAT 8.1 %: 18.0792 -> 18.08; gross 241.28 -> due 241.30
    code, out, err = run(capsys, "bill", "--db", store, "--period", "2026-01", "--json")
    assert code == 0, err
    code, out, _ = run(capsys, "invoice", "show", "1", "--db", store, "--json")
    doc = json.loads(out)["document"]
    assert [(ln["quantity"], ln["amount"], ln.get("estimated")) for ln in doc["lines"]] == \
        [("744.000", "223.20", True)]
    assert doc["total_due"] == "241.30"
    code, out, _ = run(capsys, "invoice", "explain", "1", "--db", store)
    assert "manual reading 0.000 kWh at 2025-12-14T23:00:00Z, entered by Hauswart Meier: " \
           "Einzug Anna" in out
    assert "photo reading 2903.000 kWh at 2026-04-14T22:00:00Z, entered by Hauswart Meier: " \
           "Foto vom Techniker" in out


def test_every_problem_of_a_bad_file_and_nothing_imported(capsys, store, tmp_path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("meter,timestamp,value,unit\n"
                 "m9,2026-01-01T00:00,1,kWh\n"           # line 2: no such meter
                 "m1,2026-01-01T00:00,1,m3\n"            # line 3: not an energy unit
                 "m1,yesterday,1,kWh\n"                  # line 4
                 "m1,2026-01-05T00:00,abc,kWh\n"         # line 5
                 "m1,2026-01-10T00:00,100,kWh\n"         # line 6: fine alone
                 "m1,2026-01-10T00:00,100,kWh\n",        # line 7: same instant again
                 encoding="utf-8")
    code, out, err = run(capsys, "readings", "import", str(f), "--db", store, "--by", "x")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: bad.csv:2: unknown meter 'm9'",
        "error: bad.csv:3: unit m3 does not fit meter m1 (electricity, kWh)",
        "error: bad.csv:4: timestamp 'yesterday' is not ISO 8601",
        "error: bad.csv:5: value 'abc' is not a number",
        "error: bad.csv:7: the same meter, quantity and time as line 6",
        "nothing imported",
    ]


def test_neighbours_checked_and_gateway_wins(capsys, store, tmp_path, register,
                                              put_readings) -> None:
    engine = make_engine(store)
    with engine.begin() as conn:  # January from the gateway: 0.25 kWh every 15 min from 0
        put_readings(conn, "gw-1", "m1", register("2026-01", lambda i: D("0.25")))
    engine.dispose()
    # 10 Jan 00:00 local is interval 864: the gateway read 216.000 kWh there.
    f = tmp_path / "neighbours.json"
    f.write_text(json.dumps([
        {"meter": "m1", "timestamp": "2026-01-10T00:00:00+01:00", "value": "215.5",
         "unit": "kWh", "source": "photo"},
        {"meter": "m1", "timestamp": "2026-01-20T00:07:00+01:00", "value": "100",
         "unit": "kWh"},
    ]), encoding="utf-8")
    code, out, err = run(capsys, "readings", "import", str(f), "--db", store, "--by", "x")
    assert code == 2
    # 20 Jan 00:07 sits between the gateway's 456.000 (00:00) and 456.250 (00:15) kWh
    assert err.splitlines() == [
        "error: line 2: m1 100 kWh at 2026-01-19T23:07:00Z: below the gateway reading "
        "456.000 kWh at 2026-01-19T23:00:00Z (a register never runs backwards)",
        "nothing imported"]
    f.write_text(json.dumps([{"meter": "m1", "timestamp": "2026-01-10T00:00:00+01:00",
                              "value": "215.5", "unit": "kWh", "source": "photo"}]))
    code, out, err = run(capsys, "readings", "import", str(f), "--db", store, "--by", "x")
    assert code == 0, err
    assert out.splitlines()[1] == ("line 1: the gateway's reading 216.000 kWh at "
                                   "2026-01-09T23:00:00Z wins over this one (215.5 kWh)")
    # January billed from the gateway alone: 2,976 x 0.25 = 744 kWh -> 223.20, due 241.30;
    # the conflict is listed
    code, out, err = run(capsys, "bill", "--db", store, "--period", "2026-01", "--json")
    r = json.loads(out)
    assert r["summary"]["amount_total"] == "241.30"
    conflicts = [i for i in r["summary"]["issues"] if i["kind"] == "manual_conflict"]
    assert [(i["meter"], i["at"], i["detail"]) for i in conflicts] == [
        ("m1", str(int(datetime.fromisoformat("2026-01-10T00:00:00+01:00").timestamp())),
         "photo reading 215.5 kWh by x: the gateway's 216.000 kWh is used")]
