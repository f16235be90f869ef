"""Acceptance (issue 16, part 3): a camt.054 file with a full payment, a partial one, an
over-payment and an unknown reference, imported twice (and its camt.053 after it): the
right invoices settled once, the rest listed; the overview's collected and balance come
from these payments. Hostile files are refused whole, naming the entry."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import pytest

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.payments import ops
from sitegate.cloud.payments.camt import MAX_DEPTH, CamtError
from sitegate.cloud.payments.match import creditor_reference
from sitegate.cloud.stays import ops as stays

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "billing"))
from camtfile import document  # noqa: E402
from qrpage import mod10_check_digit  # noqa: E402


def qrr(number: int) -> str:
    """The site's prefix 77, the number padded to 26 digits, the check digit."""
    body = "77" + str(number).rjust(24, "0")
    return body + mod10_check_digit(body)


@pytest.fixture
def invoices(read_camp):
    """Four issued settlements of the campsite: 1 = 18.15, 2 = refund (settled),
    3 = 14.35, 4 = 31.20 (worked out in tests/stays and below)."""
    e = read_camp
    day = date(2026, 7, 14)
    stays.run(e, None, day, issue=True)  # invoices 1 (S1) and 2 (S2)
    stays.enter_readings(e, None, "r.json", json.dumps(
        [{"unit": "C3", "meter": "power", "value": "512.25"},
         {"unit": "C3", "meter": "water", "value": "10.4"}]).encode(), "Hauswart", None, day)
    stays.checkout(e, None, "S3", day, issue=True)  # 3: 14.35, test_settlement
    stays.import_reservations(e, None, [{"id": "S4", "parent": "Y-C1", "status": "checked_in",
                                         "from": "2026-07-14", "to": "2026-07-28"}])
    stays.enter_readings(e, None, "r.json", json.dumps(
        [{"unit": "C1", "meter": "power", "value": "1173.4"},
         {"unit": "C1", "meter": "water", "value": "54.125"}]).encode(), "Hauswart", None,
        date(2026, 7, 28))
    r = stays.checkout(e, None, "S4", date(2026, 7, 28), issue=True)
    # S4: Strom 1173.4 - 1123.4 = 50 kWh x 0.35 = 17.50; Wasser 1 m³ x 4.20 = 4.20
    # 8.1 %: 17.50 + 5.00 = 22.50, VAT 1.8225 -> 1.82; 2.6 %: 4.20 + 2.50 = 6.70, VAT
    # 0.1742 -> 0.17; gross 29.20 + 1.99 = 31.19 -> cash 31.20
    assert (r["invoice"], r["total_due"]) == (4, "31.20")
    return e


ENTRIES = [
    {"bank_ref": "B1", "amount": "18.15", "ref": qrr(1), "debtor": "Familie Keller"},  # full
    {"bank_ref": "B2", "amount": "10.00", "ref": qrr(3)},  # partial: 14.35 - 10.00 = 4.35
    {"bank_ref": "B3", "amount": "40.00", "ref": qrr(4)},  # over: 31.20 - 40.00 = -8.80
    {"bank_ref": "B4", "amount": "25.00", "ref": qrr(99)},  # no invoice 99
    {"bank_ref": "B5", "amount": "99.00", "ind": "DBIT"},  # the bank's fee: not a payment
]


def _balances(e) -> dict[int, tuple[str, str]]:
    return {v["number"]: (v["state"], v["balance"]) for v in billing_ops.invoices(e, None)}


def test_camt054_full_partial_over_unknown_imported_twice(invoices) -> None:
    data = document(ENTRIES)
    r = ops.import_statement(invoices, None, "camt054.xml", data)
    assert [(c["invoice_number"], c["outcome"], c["balance_after"]) for c in r["matched"]] == [
        (1, "full", "0.00"), (3, "partial", "4.35"), (4, "over", "-8.80")]
    assert [(c["amount"], c["reason"]) for c in r["unmatched"]] == [("25.00", "no invoice 99")]
    assert r["debits"] == 1
    after = _balances(invoices)
    assert after == {1: ("settled", "0.00"), 2: ("settled", "-173.65"),
                     3: ("issued", "4.35"), 4: ("settled", "-8.80")}
    # the same file again, and the camt.053 statement of the same day: nothing changes
    again = ops.import_statement(invoices, None, "camt054.xml", data)
    assert again["already_imported"] and again["matched"] == again["unmatched"] == []
    stmt = ops.import_statement(invoices, None, "camt053.xml",
                                document(ENTRIES, kind="053", msg_id="STMT-1"))
    assert (stmt["matched"], stmt["unmatched"], stmt["known"]) == ([], [], 4)
    assert _balances(invoices) == after
    assert [e["amount"] for e in billing_ops.invoice(invoices, None, 1)["events"]
            if e["kind"] == "payment"] == ["18.15"]  # paid once
    # the overview's collected and balance are these payments:
    # collected 18.15 + 10.00 + 40.00 = 68.15
    # balance 0.00 - 173.65 (the refund owed) + 4.35 - 8.80 = -178.10
    ov = billing_ops.overview(invoices, None, None)
    assert (ov["collected"], ov["balance"]) == ("68.15", "-178.10")
    # the unknown credit stays listed until the operator assigns it
    (left,) = ops.credits(invoices, None, "unmatched")
    assert left["reference"] == qrr(99)
    done = ops.assign(invoices, None, left["id"], 3)
    assert (done["outcome"], done["balance_after"]) == ("over", "-20.65")  # 4.35 - 25.00
    assert ops.credits(invoices, None, "unmatched") == []
    with pytest.raises(ops.PaymentError, match="assigned"):
        ops.assign(invoices, None, left["id"], 3)


def test_creditor_reference_and_unmatched_reasons(invoices) -> None:
    bad_qr = qrr(3)[:-1] + str((int(qrr(3)[-1]) + 1) % 10)
    entries = [
        {"bank_ref": "C1", "amount": "14.35", "ref": creditor_reference("77", 3)},  # RF..
        {"bank_ref": "C2", "amount": "5.00", "ref": bad_qr},
        {"bank_ref": "C3", "amount": "5.00"},  # no reference
        {"bank_ref": "C4", "amount": "5.00", "ref": qrr(2), "ccy": "EUR"},
        {"bank_ref": "C5", "amount": "5.00", "ref": qrr(3), "status": "PDNG"},
        {"bank_ref": "C6", "amount": "5.001", "ref": qrr(3)},
    ]
    r = ops.import_statement(invoices, None, "x.xml", document(entries))
    assert [(c["invoice_number"], c["outcome"]) for c in r["matched"]] == [(3, "full")]
    assert [c["reason"] for c in r["unmatched"]] == [
        f"QR reference {bad_qr} has a wrong check digit", "no reference",
        "in EUR, the site bills in CHF", "not booked yet (entry status is not BOOK)",
        "amount 5.001 has more than 2 decimals"]


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">&lol2;</Document>"""


@pytest.mark.parametrize(("data", "message"), [
    (b"<Document", "not well-formed XML"),
    (BOMB, "DTDs, entities and external references are refused"),
    (b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
    (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>',
     "not a camt.053 or camt.054 document"),
    (document([{"bank_ref": "X", "amount": "1,50"}]),
     "Ntfctn 1, Ntry 1: amount '1,50' is not an amount"),
    (document([{"bank_ref": "X", "amount": "1.50"}, {"bank_ref": "Y", "amount": "2",
                                                     "ind": "CREDIT"}]),
     "Ntfctn 1, Ntry 2: CdtDbtInd 'CREDIT' is neither CRDT nor DBIT"),
    (document([{"bank_ref": "X", "amount": "1.50", "date": "2026-13-01"}]),
     "Ntfctn 1, Ntry 1: '2026-13-01' is not a date"),
    (document([{"bank_ref": "X", "amount": "1.50"}], iban="CH9300762011623852957"),
     "account CH9300762011623852957 is not the account of site seeblick"),
])
def test_malformed_file_refused_naming_the_entry_and_nothing_kept(camp, data,
                                                                 message) -> None:
    with pytest.raises(CamtError, match=message):
        ops.import_statement(camp, None, "bad.xml", data)
    assert ops.credits(camp, None) == []


EXAMPLE = Path(__file__).resolve().parents[2] / "config/examples/payments/camt054-seeblick.xml"


def test_cli_as_in_the_readme(capsys, read_camp, db_path, tmp_path) -> None:
    from sitegate.cloud.cli import main

    stays.run(read_camp, None, date(2026, 7, 14), issue=True)
    db = ["--db", str(db_path)]
    assert main(["payments", "import", str(EXAMPLE), *db]) == 0
    out = capsys.readouterr().out
    assert "1 matched, 1 unmatched" in out and "no invoice 99" in out
    assert main(["payments", "import", str(EXAMPLE), *db]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert main(["payments", "list", "--unmatched", "--json", *db]) == 0
    assert [c["amount"] for c in json.loads(capsys.readouterr().out)] == ["50.00"]
    bad = tmp_path / "bad.xml"
    bad.write_bytes(document([{"bank_ref": "X", "amount": "-3"}]))
    assert main(["payments", "import", str(bad), *db]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {bad}: Ntfctn 1, Ntry 1: amount '-3' is not an amount (digits, up to 5 "
        "decimals)", "nothing imported"]
