"""Store-backed billing: gap-free numbers, byte-identical re-billing, the invoice lifecycle
(partial payment, reminders, credit note, write-off, cancel), the overview, late readings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from sitegate.cloud.billing import ledger
from sitegate.cloud.billing.billing_run import bill, late
from sitegate.cloud.billing.ledger import LifecycleError
from sitegate.cloud.store.tables import billing_invoices

ZH = ZoneInfo("Europe/Zurich")




def docs(conn) -> dict[int, str]:
    rows = conn.execute(select(billing_invoices.c.number, billing_invoices.c.document))
    return dict(rows.all())


def test_bill_numbers_and_byte_identical_rebill(billed) -> None:
    db, model, first = billed
    assert first["created"] == [1, 2] and first["summary"]["amount_total"] == "248.00"
    with db.begin() as conn:
        before = docs(conn)
        again = bill(conn, model, "2026-01")
        assert again["created"] == [] and again["unchanged"] == [1, 2]
        assert docs(conn) == before  # same bytes
        views = {v["number"]: v for v in ledger.list_invoices(conn, "lindenweg")}
    assert (views[1]["account"], views[1]["total_due"], views[1]["state"]) == \
        ("anna", "120.00", "draft")
    assert (views[2]["account"], views[2]["total_due"]) == ("ben", "128.00")


def test_partial_payment_reminders_credit_note(billed) -> None:
    db, model, _ = billed
    now = datetime(2026, 2, 2, tzinfo=UTC)
    with db.begin() as conn:
        v = ledger.issue(conn, model, 1, date(2026, 2, 2), now)
        assert (v["state"], v["due_date"], v["balance"]) == ("issued", "2026-03-04", "120.00")
        with pytest.raises(LifecycleError, match="only drafts"):
            ledger.issue(conn, model, 1, date(2026, 2, 2), now)
        # partial payment: 120.00 - 50.00 = 70.00 open
        v = ledger.pay(conn, model, 1, "50.00", date(2026, 2, 10))
        assert (v["state"], v["balance"]) == ("issued", "70.00")
        with pytest.raises(LifecycleError, match="not overdue"):
            ledger.remind(conn, model, 1, date(2026, 3, 4))
        # R1 (fee 0.00), due 5 Mar + 10 days = 15 Mar; R2 (fee 20.00): 70.00 + 20.00 = 90.00
        v = ledger.remind(conn, model, 1, date(2026, 3, 5))
        assert (v["reminder_level"], v["due_date"], v["balance"]) == (1, "2026-03-15", "70.00")
        v = ledger.remind(conn, model, 1, date(2026, 3, 16))
        assert (v["reminder_level"], v["due_date"], v["balance"]) == (2, "2026-03-26", "90.00")
        # Credit note of 10.00 net at 8.1 %: -10.00 - 0.81 = -10.81 -> -10.80 (rounding +0.01)
        # It takes the next number (3); the invoice's balance: 90.00 - 10.80 = 79.20
        before = docs(conn)[1]
        c = ledger.credit(conn, model, 1, date(2026, 3, 20), net="10.00", vat="8.1",
                          label="Korrektur Messgebühr")
        cn = c["credit_note"]
        assert (cn["number"], cn["kind"], cn["total_due"]) == (3, "credit_note", "-10.80")
        assert (cn["document"]["vat_total"], cn["document"]["rounding"]) == ("-0.81", "0.01")
        assert c["invoice"]["balance"] == "79.20"
        assert docs(conn)[1] == before  # the issued invoice is never edited
        v = ledger.pay(conn, model, 1, "79.20", date(2026, 3, 25))
        assert (v["state"], v["balance"]) == ("settled", "0.00")
        # Ben's invoice: issued, never paid, written off (borne by the owner)
        ledger.issue(conn, model, 2, date(2026, 2, 2), now)
        v = ledger.write_off(conn, model, 2, date(2026, 6, 1))
        assert (v["state"], v["borne_by"], v["balance"]) == ("written_off", "owner", "0.00")
        # amount: 120.00 + 20.00 fee - 10.80 credit + 128.00 = 257.20; collected 50 + 79.20
        ov = ledger.overview(conn, "lindenweg", "2026-01")
    assert (ov["amount"], ov["collected"], ov["balance"]) == ("257.20", "129.20", "0.00")
    assert (ov["settled"], ov["written_off"], ov["draft"], ov["in_progress"]) == (1, 1, 0, 0)


def test_cancel_keeps_the_number_and_rebill_takes_the_next(billed) -> None:
    # February without readings: Ben pays the fee only: 6.20 x 28/28; VAT 0.5022 -> 0.50;
    # 6.70. The energy line is absent (no data), the missing intervals are reported.
    db, model, _ = billed
    with db.begin() as conn:
        feb = bill(conn, model, "2026-02")
        assert feb["created"] == [3]
        assert any(i["kind"] == "missing" for i in feb["summary"]["issues"])
        v = ledger.cancel(conn, model, 3, date(2026, 3, 1))
        assert (v["state"], v["borne_by"], v["total_due"]) == ("cancelled", "operator", "6.70")
        assert bill(conn, model, "2026-02")["created"] == [4]
        numbers = sorted(docs(conn))
        ov = ledger.overview(conn, "lindenweg", "2026-02")
    assert numbers == [1, 2, 3, 4]  # no gaps
    assert (ov["cancelled"], ov["draft"]) == (1, 1)


def test_late_reading_is_reported_and_never_changes_an_issued_invoice(billed,
                                                                      put_readings) -> None:
    db, model, _ = billed
    with db.begin() as conn:
        ledger.issue(conn, model, 1, date(2026, 2, 2), datetime(2026, 2, 2, tzinfo=UTC))
        before = docs(conn)
        late_ts = int(datetime(2026, 1, 10, 10, 7, tzinfo=ZH).timestamp())
        put_readings(conn, "gw-1", "m1", [(late_ts, 1_000_000 * 870)], seq0=10_000,
                     received_at=datetime(2026, 2, 5, tzinfo=UTC))
        report = late(conn, model, "2026-01")
        again = bill(conn, model, "2026-01")
        after = docs(conn)
    assert report == [{"period": "2026-01", "meter": "m1", "count": 1,
                       "first": "2026-01-10T09:07:00+00:00", "invoices": ["1"],
                       "community": False}]
    assert [d["number"] for d in again["issued_differs"]] == [1]
    assert after[1] == before[1]
