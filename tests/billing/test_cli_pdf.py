"""The CLI over a real SQLite store with the example site: import (and its errors), bill,
issue, explain, export, and the invoice PDF whose QR-bill an independent decoder reads."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal as D
from pathlib import Path

import pypdfium2
import pytest
from qrpage import mod10_check_digit, qr_fields

from sitegate.cloud.cli import main
from sitegate.cloud.store.db import make_engine, upgrade

EXAMPLE = Path(__file__).resolve().parents[2] / "config/examples/site-lindenweg.toml"
GW = "bldg-lindenweg-12"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def store(tmp_path, register, put_readings):
    """Example site imported; January readings: flats 1 kWh/h and 0.8 kWh/h, common
    0.4 kWh/h; from 10:00 to 15:00 the PV gives 1.6 kWh/h, 1.2 of it used (import drops by
    that), 0.4 exported."""
    db = str(tmp_path / "cloud.db")
    upgrade(db)

    def sunny(i: int) -> bool:
        return 40 <= i % 96 < 60

    # apt-2 reads 9575 + 1481 x 0.2 = 9871.200 at the move (16 Jan 10:15): the handover
    # reading 9871.240 of the example fits (9871.000 at 10:00, 9871.400 at 10:30).
    series = {
        "apt-1": (D("0.25"), D(0)), "apt-2": (D("0.2"), D(9575)), "common": (D("0.1"), D(0)),
    }
    engine = make_engine(db)
    with engine.begin() as conn:
        seq = 1
        for meter, (per, start) in series.items():
            seq = put_readings(conn, GW, meter, register("2026-01", lambda i, p=per: p,
                                                         start=start), seq0=seq)
        seq = put_readings(conn, GW, "main", register(
            "2026-01", lambda i: D("0.25") if sunny(i) else D("0.55")), seq0=seq)
        seq = put_readings(conn, GW, "main", register(
            "2026-01", lambda i: D("0.1") if sunny(i) else D(0)), "1-0:2.8.0", seq0=seq)
        seq = put_readings(conn, GW, "pv", register(
            "2026-01", lambda i: D("0.4") if sunny(i) else D(0)), "1-0:2.8.0", seq0=seq)
        for q in ("1-0:1.8.0", "1-0:2.8.0"):
            seq = put_readings(conn, GW, "battery", register("2026-01", lambda i: D(0)), q,
                               seq0=seq)
    engine.dispose()
    return db


def test_import_errors_name_the_key(tmp_path, capsys) -> None:
    db = str(tmp_path / "c.db")
    upgrade(db)
    bad = EXAMPLE.read_text().replace('account = "weber"\nfrom', 'account = "webr"\nfrom', 1)
    bad = bad.replace('area_m2 = "72.0"', 'area_m2 = "72 m2"')
    f = tmp_path / "bad.toml"
    f.write_text(bad)
    code, _, err = run(capsys, "site", "import", str(f), "--db", db)
    assert code == 2
    assert "billing_points[1].area_m2" in err
    code, _, err = run(capsys, "site", "import", str(f).replace("bad", "missing"), "--db", db)
    assert code == 2 and "No such file" in err
    f.write_text(bad.replace('area_m2 = "72 m2"', 'area_m2 = "72.0"'))
    code, _, err = run(capsys, "site", "import", str(f), "--db", db)
    assert code == 2 and "occupancy[2].account: unknown account 'webr'" in err


def test_bill_issue_explain_export_and_qr_bill(store, tmp_path, capsys) -> None:
    db = store
    code, out, err = run(capsys, "site", "import", str(EXAMPLE), "--db", db)
    assert code == 0, err
    code, out, err = run(capsys, "bill", "--db", db, "--period", "2026-01", "--json")
    assert code == 0, err
    r = json.loads(out)
    # Progress goes to stderr (plain lines when not a terminal), the result to stdout.
    assert "billing 2026-01: 0% (loading readings of 7 meters)" in err
    assert "billing 2026-01: 100% (4 documents)" in err.splitlines()[-1]
    # Flats and common use 0.55 kWh per interval; in the 20 sunny ones 0.3 come from the
    # sun (0.55 - import 0.25): apt-1's share 0.25/0.55 of it every sunny interval.
    e = r["summary"]["energy_kwh"]
    assert e["consumption"] == "1636.800"  # 2976 x 0.55
    assert e["solar"] == "186.000"  # 31 days x 20 x 0.3
    assert e["production_derived"] == r["summary"]["production_metered_kwh"] == "248.000"
    assert r["created"] == [1, 2, 3, 4]  # keller, muster, owner, weber (sorted)
    code, out, _ = run(capsys, "invoice", "list", "--db", db, "--json")
    inv = {v["account"]: v for v in json.loads(out)}
    n = inv["muster"]["number"]
    code, out, err = run(capsys, "invoice", "issue", str(n), "--db", db, "--date",
                         "2026-02-02", "--json")
    assert code == 0, err
    issued = json.loads(out)
    assert issued["due_date"] == "2026-03-04"
    code, out, _ = run(capsys, "invoice", "explain", str(n), "--db", db)
    assert "meter apt-1 (bldg-lindenweg-12/apt-1)" in out and "2977 readings" in out
    # The move on 16 Jan at 10:20 is split at 10:15 at the manager's handover reading.
    assert not [i for i in r["summary"]["issues"] if i["kind"] == "handover_reading"]
    code, out, _ = run(capsys, "invoice", "explain", str(inv["weber"]["number"]), "--db", db)
    assert ("move-in noted 2026-01-16T10:20:00, split at 2026-01-16T09:15:00Z: handover "
            "reading noted by hand 9871.240 kWh, meter apt-2") in out
    code, out, _ = run(capsys, "export", "--db", db, "--period", "2026-01", "--what",
                       "consumption")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["key"] for r in rows} >= {"solar", "grid_peak", "grid_offpeak", "levies"}
    # Issuing twice is refused with a clear error, nothing changes.
    code, _, err = run(capsys, "invoice", "issue", str(n), "--db", db)
    assert code == 2 and "only drafts are issued" in err

    pdf = tmp_path / "inv.pdf"
    code, _, err = run(capsys, "invoice", "pdf", str(n), "--db", db, "-o", str(pdf))
    assert code == 0, err
    (fields,) = qr_fields(pdf.read_bytes())
    assert fields[0:3] == ["SPC", "0200", "1"]
    assert fields[3] == "CH4431999123000889012"  # the site's IBAN
    assert fields[18] == issued["balance"] and fields[19] == "CHF"
    assert fields[27] == "QRR"
    ref = fields[28]
    assert len(ref) == 27 and ref.startswith("1012")
    assert ref[-1] == mod10_check_digit(ref[:-1])
    assert int(ref[4:-1]) == n
    # Page 2, the tenant's month by day: apt-1 uses 0.25 kWh an interval, 744 kWh in all;
    # its sun is 0.25/0.55 of 0.3 kWh in 20 intervals a day: 31 x 20 x 0.3 x 5/11 =
    # 84.545 kWh (11 %), grid 744 - 84.545 = 659.455.
    doc = pypdfium2.PdfDocument(pdf.read_bytes())
    assert len(doc) == 2
    text = doc[1].get_textpage().get_text_range()
    assert "Ihr Stromverbrauch 2026-01" in text
    assert ("Verbrauch 744.0 kWh, davon Solarstrom 84.5 kWh (11 %) und Netzstrom 659.5 kWh"
            in text)
    assert "Solarstrom" in text and "Netzstrom" in text  # the legend
    page1 = doc[0].get_textpage().get_text_range()
    assert "Akontozahlungen" in page1 and "-50.00" in page1  # Anna paid 50.00 ahead
    # Keller paid nothing ahead: no "Akontozahlungen -0.00" on his bill.
    other = tmp_path / "keller.pdf"
    code, _, err = run(capsys, "invoice", "pdf", str(inv["keller"]["number"]), "--db", db,
                       "-o", str(other))
    assert code == 0, err
    page1 = pypdfium2.PdfDocument(other.read_bytes())[0].get_textpage().get_text_range()
    assert "Total netto" in page1 and "Akontozahlungen" not in page1
