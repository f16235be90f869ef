"""Expense statements from the real store through the CLI: heat and hot-water readings
ingested as the gateway sends them (M-Bus quantities heat_energy kWh, volume m3) plus a
reading entered by hand, the combined-boiler case of test_allocation_rules, its documents
(explain, PDF read back, export) and the billing core's lifecycle on the statements."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from houses import COMBINED_PERIOD, SITE, heat_meters, ingest, merged

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.billing.sitemodel import parse_site
from sitegate.cloud.cli import main
from sitegate.cloud.store.db import make_engine, upgrade

Y0, Y1 = date(2025, 1, 1), date(2026, 1, 1)
PERIOD = COMBINED_PERIOD.replace("[period]\n", '[period]\nrequire = ["heating", "hot_water"]\n')


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def store(tmp_path):
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    engine = make_engine(db)
    data = dict(SITE, occupancy=SITE["occupancy"][:2],
                **merged(heat_meters("A", "B"), heat_meters("A", "B", medium="water",
                                                            prefix="ww")))
    billing_ops.import_site(engine, parse_site(data))
    # heat (kWh) and hot water (m3) as the M-Bus meters send them; ww-B's end of year
    # is missing from the gateway and noted by hand below
    ingest(engine, "gw-haus", [
        ("heat-A", "heat_energy", Y0, "1000", "kWh"), ("heat-A", "heat_energy", Y1, "4000", "kWh"),
        ("heat-B", "heat_energy", Y0, "0", "kWh"), ("heat-B", "heat_energy", Y1, "5000", "kWh"),
        ("ww-A", "volume", Y0, "100.00", "m3"), ("ww-A", "volume", Y1, "120.00", "m3"),
        ("ww-B", "volume", Y0, "7.00", "m3")])
    hand = ("meter,quantity,timestamp,value,unit,source,note\n"
            "ww-B,volume,2026-01-01T00:00:00,37.00,m3,manual,read on site\n")
    res = billing_ops.import_readings(engine, None, "hand.csv", hand.encode(), "Hauswart")
    assert res["imported"] == 1
    engine.dispose()
    (tmp_path / "period.toml").write_text(PERIOD, encoding="utf-8")
    return db, tmp_path


def pdf_text(data: bytes) -> str:
    doc = pdfium.PdfDocument(data)
    return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))


def test_statement_from_the_store_cli_documents_and_lifecycle(store, capsys) -> None:
    db, tmp = store
    code, out, err = run(capsys, "expense", "period", "create", str(tmp / "period.toml"),
                         "--db", db)
    assert code == 0, err
    # the template requires a hot-water category with costs: the combined boiler feeds it
    code, _, err = run(capsys, "statements", "run", "2025", "--db", db)
    assert code == 2 and "requires a heating category with costs" in err
    assert "nothing was made" in err
    code, out, err = run(capsys, "expense", "invoice", "add", "2025", "--db", db,
                         "--category", "heizung", "--amount", "4500.00", "--quantity", "5000",
                         "--unit", "l", "--date", "2025-10-01", "--supplier", "Öl AG",
                         "--by", "Verwaltung")
    assert code == 0, err
    for acc, bp, amount in (("anna", "A", "1800.00"), ("ben", "B", "2700.00")):
        code, _, err = run(capsys, "expense", "advances", "2025", "--db", db, "--account",
                           acc, "--billing-point", bp, "--amount", amount)
        assert code == 0, err
    code, out, err = run(capsys, "expense", "run", "2025", "--db", db, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["created"] == [1, 2] and r["total_costs"] == "4500.00"
    # As in test_allocation_rules: Anna 1750.78 - 1800.00 advances = refund 49.22;
    # Ben 2749.22 - 2700.00 = due 49.22. ww-B's hand-noted 37.00 m3 made V = 50 m³.
    code, out, _ = run(capsys, "expense", "show", "2025", "--db", db, "--json")
    rows = {v["account"]: v for v in json.loads(out)}
    assert (rows["anna"]["total_due"], rows["ben"]["total_due"]) == ("-49.22", "49.22")
    code, out, _ = run(capsys, "expense", "show", "2025", "--db", db, "--overall", "--json")
    overall = json.loads(out)
    assert overall["categories"][0]["combined"]["volume_m3"] == "50.000"
    assert overall["units"][1]["consumption"]["hot_water"]["meters"][0]["end"] == "37.000"
    # the owner's overall statement as PDF: every unit's share and every balance in it
    code, _, err = run(capsys, "expense", "pdf", "2025", "--db", db, "--overall", "-o",
                       str(tmp / "overall.pdf"))
    assert code == 0, err
    text = pdf_text((tmp / "overall.pdf").read_bytes())
    for cat in overall["categories"]:
        assert cat["total"] in text
        for part in cat["parts"]:
            assert all(a in text for a in part["units"].values())
    assert all(v["balance"] in text for v in overall["accounts"].values())
    code, out, _ = run(capsys, "expense", "explain", "2025", "--db", db, "--account", "anna")
    assert code == 0 and "738.28" in out and "hot water's share 12.5000 %" in out
    # the PDF says what the JSON says: every line's amount and quantity, the totals
    pdf = tmp / "anna.pdf"
    code, _, err = run(capsys, "expense", "pdf", "2025", "--db", db, "--account", "anna",
                       "-o", str(pdf))
    assert code == 0, err
    text = pdf_text(pdf.read_bytes())
    code, out, _ = run(capsys, "expense", "show", "2025", "--db", db, "--account", "anna",
                       "--json")
    doc = json.loads(out)["document"]
    for ln in doc["lines"]:
        assert ln["amount"] in text and ln["quantity"] in text
    for key in ("net_total", "gross_total", "advances"):
        assert doc[key] in text
    assert "Guthaben (wird ausbezahlt)" in text and "49.22" in text
    # the export: consumption per unit and category
    code, out, _ = run(capsys, "expense", "export", "2025", "--db", db, "--format", "csv")
    rows_csv = list(csv.DictReader(io.StringIO(out)))
    assert {(x["billing_point"], x["category"], x["consumption"], x["amount"])
            for x in rows_csv} == {("A", "heizung", "3000.000", "1525.78"),
                                   ("B", "heizung", "5000.000", "2411.72"),
                                   ("A", "warmwasser", "20.000", "225.00"),
                                   ("B", "warmwasser", "30.000", "337.50")}
    # the billing core's lifecycle: Anna's refund is settled on issue; Ben pays his 49.22
    code, out, err = run(capsys, "invoice", "issue", "1", "--db", db, "--date", "2026-02-01",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == "settled"
    run(capsys, "invoice", "issue", "2", "--db", db, "--date", "2026-02-01")
    code, out, err = run(capsys, "invoice", "pay", "2", "49.22", "--db", db, "--date",
                         "2026-02-20", "--json")
    assert code == 0, err
    assert (json.loads(out)["state"], json.loads(out)["balance"]) == ("settled", "0.00")
    # a re-run with the same data changes nothing, issued or not
    code, out, _ = run(capsys, "expense", "run", "2025", "--db", db, "--json")
    assert json.loads(out)["unchanged"] == [1, 2]
    # the electricity bill's overlap check and late-readings report leave statements alone
    code, out, err = run(capsys, "invoice", "late", "--db", db)
    assert code == 0, err


def test_bad_input_is_one_line_and_stores_nothing(store, capsys) -> None:
    db, tmp = store
    bad = tmp / "bad.toml"
    bad.write_text(PERIOD.replace('consumption_share = "50"', 'consumption_share = "80"'))
    code, _, err = run(capsys, "expense", "period", "create", str(bad), "--db", db)
    assert code == 2 and "categories[0].consumption_share: 80 %" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "expense", "period", "show", "2025", "--db", db)
    assert code == 2 and "no accounting period '2025'" in err
    run(capsys, "expense", "period", "create", str(tmp / "period.toml"), "--db", db)
    code, _, err = run(capsys, "expense", "invoice", "add", "2025", "--db", db, "--category",
                       "heizung", "--amount", "12.345", "--by", "x")
    assert code == 2 and "more than 2 decimals" in err
    code, _, err = run(capsys, "expense", "run", "2025", "--db", db, "--date", "2025-12-31")
    assert code == 2 and "has not ended" in err


def test_example_files_fit_the_example_site(tmp_path, capsys) -> None:
    root = Path(__file__).resolve().parents[2]
    db = str(tmp_path / "cloud.db")
    assert run(capsys, "site", "import", "--db", db,
               str(root / "config/examples/site-lindenweg.toml"))[0] == 0
    code, out, err = run(capsys, "expense", "period", "create",
                         str(root / "config/examples/expense/period.toml"), "--db", db)
    assert code == 0, err
    code, out, err = run(capsys, "expense", "hierarchy", "set",
                         str(root / "config/examples/expense/hierarchy.toml"), "--db", db)
    assert code == 0, err
