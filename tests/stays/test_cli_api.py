"""``sitegate-cloud stays`` as the README shows it, and the same over the HTTP API on a
real uvicorn server: the guest's settlement PDF carries the QR-bill of what is due."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sitegate.cloud.auth import tokens
from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "billing"))
from campsite import api_server  # noqa: E402
from qrpage import mod10_check_digit, qr_fields  # noqa: E402

EX = Path(__file__).resolve().parents[2] / "config" / "examples" / "stays"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_as_in_the_readme(capsys, tmp_path, db_path) -> None:
    db = ["--db", str(db_path)]
    assert _run(capsys, "site", "import", str(EX / "site-campsite.toml"), *db)[0] == 0
    assert _run(capsys, "stays", "units", "import", str(EX / "units.toml"), *db)[0] == 0
    code, out, _ = _run(capsys, "stays", "reservations", "import",
                        str(EX / "reservations.toml"), *db)
    assert (code, out.strip()) == (0, "site seeblick: 8 reservations created, 0 updated")
    for day in ("2026-07-01", "2026-07-14"):
        code, out, err = _run(capsys, "stays", "readings", "bulk",
                              str(EX / f"readings-{day}.csv"), "--unit-type", "chalet",
                              "--date", day, "--by", "Hauswart", *db)
        assert code == 0, err
    code, out, _ = _run(capsys, "stays", "settle", "--date", "2026-07-14", "--json", *db)
    r = json.loads(out)
    assert [(s["reservation"], s["total_due"]) for s in r["settled"]] == [
        ("S1", "18.15"), ("S2", "-173.65")]  # worked by hand in test_settlement
    assert [s["unit"] for s in r["skipped"]] == ["C3", "P1", "P2", "P3"]
    pdf = tmp_path / "s1.pdf"
    assert _run(capsys, "invoice", "issue", "1", "--date", "2026-07-14", *db)[0] == 0
    code, out, _ = _run(capsys, "stays", "document", "S1", "-o", str(pdf), *db)
    assert code == 0 and "invoice 1" in out
    (qr,) = qr_fields(pdf.read_bytes())
    assert qr[18:20] == ["18.15", "CHF"]  # the amount due after the deposit
    assert qr[27:29] == ["QRR", "77" + "0" * 23 + "1" + mod10_check_digit("77" + "0" * 23 + "1")]

    # bad input: one line per problem, exit 2, nothing stored
    bad = tmp_path / "bad.csv"
    bad.write_text("unit,meter,value\nC1,power,-3\nC9,power,1\n")
    code, _, err = _run(capsys, "stays", "readings", "bulk", str(bad), "--by", "x", *db)
    assert code == 2
    assert err.splitlines() == ["error: line 2: C1 power: not a meter value: '-3'",
                                "error: line 3: unknown unit 'C9'", "nothing stored"]
    code, _, err = _run(capsys, "stays", "checkout", "S3", "--date", "2026-07-14", *db)
    assert (code, err.strip()) == (2, "error: reservation S3 is not settled: no end reading "
                                      "of meter power after 2026-07-01 up to 2026-07-14")
    code, _, err = _run(capsys, "stays", "units", "import", str(tmp_path / "none.toml"), *db)
    assert code == 2 and "none.toml" in err


@pytest.fixture
def server(db_path):
    from sitegate.cloud.store.db import make_engine

    engine = make_engine(str(db_path))
    token, _ = tokens.create(engine, "office", frozenset(Scope))
    reader, _ = tokens.create(engine, "reader", frozenset({Scope.READ, Scope.MONEY_READ}))
    engine.dispose()
    with api_server(db_path) as url:
        yield url, token, reader


def _call(url: str, token: str, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body, default=str).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={
        "authorization": f"Bearer {token}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if "json" in r.headers["content-type"] else raw
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api(server) -> None:
    import tomllib

    from sitegate.cloud.billing.sitemodel import load_site, site_to_json

    url, token, reader = server
    assert _call(url, token, "PUT", "/billing/sites",
                 site_to_json(load_site(EX / "site-campsite.toml")))[0] == 200
    units = tomllib.loads((EX / "units.toml").read_text())
    assert _call(url, reader, "PUT", "/stays/seeblick/units", units)[0] == 403
    assert _call(url, token, "PUT", "/stays/seeblick/units", units)[0] == 200
    res = tomllib.loads((EX / "reservations.toml").read_text())["reservations"]
    assert _call(url, token, "POST", "/stays/seeblick/reservations",
                 {"reservations": res})[1] == {"site": "seeblick", "created": 8, "updated": 0}
    rows = [{"unit": "C1", "meter": "power", "value": "1000.0"},
            {"unit": "C1", "meter": "water", "value": "50.000"}]
    code, r = _call(url, token, "POST", "/stays/seeblick/readings",
                    {"entered_by": "Hauswart", "date": "2026-07-01", "readings": rows})
    assert (code, r["stored"]) == (200, 2)
    bad = [{"unit": "C1", "meter": "power", "value": "10"}]  # backwards
    code, r = _call(url, token, "POST", "/stays/seeblick/readings",
                    {"entered_by": "Hauswart", "date": "2026-07-14", "readings": bad})
    assert code == 422 and r["detail"]["errors"][0].startswith("line 1: C1 power: 10 kWh is "
                                                                "below the last value")
    rows = [{"unit": "C1", "meter": "power", "value": "1123.4"},
            {"unit": "C1", "meter": "water", "value": "53.125"}]
    assert _call(url, token, "POST", "/stays/seeblick/readings",
                 {"entered_by": "Hauswart", "date": "2026-07-14", "readings": rows})[0] == 200
    code, r = _call(url, token, "POST", "/stays/seeblick/reservations/S1/checkout",
                    {"date": "2026-07-14"})
    assert (code, r["total_due"]) == (200, "18.15")  # as worked in test_settlement
    code, r = _call(url, token, "POST", "/stays/seeblick/reservations/S1/checkout",
                    {"date": "2026-07-14"})
    assert code == 409
    code, pdf = _call(url, reader, "GET", "/stays/seeblick/reservations/S1/document")
    assert code == 200 and pdf[:5] == b"%PDF-"
    code, r = _call(url, token, "POST", "/stays/seeblick/settle",
                    {"date": "2026-07-14", "unit_type": "pitch", "dry_run": True})
    assert [s["reason"] for s in r["skipped"]] == [
        "no_parent_reservation", "wrong_status", "ineligible_category"]

    # the guest pays: the bank's camt.054 through the API settles the invoice
    assert _call(url, token, "POST", "/billing/sites/seeblick/invoices/1/issue",
                 {"date": "2026-07-14"})[0] == 200
    xml = (EX.parent / "payments" / "camt054-seeblick.xml").read_text()
    assert _call(url, reader, "POST", "/payments/seeblick/statements", {"xml": xml})[0] == 403
    code, r = _call(url, token, "POST", "/payments/seeblick/statements", {"xml": xml})
    assert (code, [c["outcome"] for c in r["matched"]]) == (200, ["full"])
    code, r = _call(url, token, "POST", "/payments/seeblick/statements",
                    {"xml": xml.replace("18.15", "18,15")})
    assert code == 422 and "Ntry 1" in r["detail"]
    code, r = _call(url, reader, "GET", "/payments/seeblick/credits?unmatched=true")
    assert [c["reason"] for c in r] == ["no invoice 99"]
    code, r = _call(url, token, "POST", f"/payments/seeblick/credits/{r[0]['id']}/assign",
                    {"invoice": 1})
    assert (code, r["outcome"]) == (200, "over")
