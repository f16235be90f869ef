"""The web console's invoices overview for a site with 2,000 invoices: server-side time of
the page (GET /web/sites/{site}/invoices on a real uvicorn server, logged in as an
operator) against the bare queries it rests on (the two SELECTs of invoice summaries and
event amounts), in the same run; limit 300 ms.

    .venv/bin/python bench/bench_console.py [--invoices 2000] [--rounds 15] [--db URL]

The site: 170 flats in 4 buildings, one tenant each, monthly invoices over 12 months
(2,040 invoices), each issued; a third paid, a tenth reminded once, some reminded twice,
a few cancelled or written off. Invoices are written straight into the store with a
document of realistic size (a dozen lines); billing them from readings is
bench_billing_e2e's business. The page's server-side time is measured as the request's
round trip on loopback (the client side is a few hundred microseconds of it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from benchkit import ROOT, timed

sys.path.insert(0, str(ROOT))  # tests.helpers, imported by console_kit
sys.path.insert(0, str(ROOT / "tests" / "web"))

LIMIT_MS = 300.0


def _model(flats: int) -> dict:
    buildings = [{"id": f"h{i}", "name": f"Haus {chr(65 + i)}"} for i in range(4)]
    points, accounts, occupancy, meters, assignments = [], [], [], [], []
    for k in range(flats):
        bp = f"apt-{k + 1}"
        points.append({"id": bp, "building": f"h{k % 4}", "name": f"Wohnung {k + 1}",
                       "tariff": "res", "owner": "own"})
        accounts.append({"id": f"t{k + 1}", "name": f"Tenant {k + 1}"})
        occupancy.append({"billing_point": bp, "account": f"t{k + 1}", "from": "2025-01-01"})
        meters.append({"id": f"m{k + 1}", "gateway": "gw-1"})
        assignments.append({"billing_point": bp, "meter": f"m{k + 1}", "from": "2025-01-01"})
    return {
        "site": {"id": "big", "name": "Grosse Siedlung", "gateways": ["gw-1"],
                 "creditor": {"name": "Verwaltung AG", "pcode": "8000", "city": "Zürich",
                              "iban": "CH44 3199 9123 0008 8901 2"}},
        "buildings": buildings, "meters": meters, "billing_points": points,
        "meter_assignments": assignments,
        "accounts": [{"id": "own", "name": "Eigentümer AG", "kind": "owner"}, *accounts],
        "occupancy": occupancy,
        "tariffs": [{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "energy", "label": "Strom", "price": "0.30"}]}]}]}


def _document(k: int, account: str, name: str, period: str) -> str:
    lines = [{"n": n + 1, "billing_point": f"apt-{k + 1}", "key": f"c{n}",
              "label": f"Position {n + 1}", "from": f"{period}-01", "to": f"{period}-28",
              "quantity": "123.456", "unit": "kWh", "unit_price": "0.30", "amount": "37.04",
              "vat_rate": "8.1", "source": None} for n in range(12)]
    return json.dumps({"site": "big", "site_name": "Grosse Siedlung", "currency": "CHF",
                       "period": period, "period_first": f"{period}-01",
                       "period_last": f"{period}-28",
                       "account": {"id": account, "name": name}, "lines": lines,
                       "vat": [{"rate": "8.1", "net": "444.48", "vat": "36.00"}],
                       "net_total": "444.48", "vat_total": "36.00", "gross_total": "480.48",
                       "advances": "0.00", "rounding": "0.02", "total_due": "480.50",
                       "sources": []})


def build(db: str, n: int) -> None:
    from sitegate.cloud.billing import ops
    from sitegate.cloud.store.db import make_engine, upgrade
    from sitegate.cloud.store.tables import billing_events, billing_invoices

    upgrade(db)
    engine = make_engine(db)
    flats = 170
    ops.import_site(engine, _model(flats))
    invoices, events = [], []
    months = [f"2025-{m:02d}" for m in range(1, 13)]
    number = 0
    for period in months:
        for k in range(flats):
            number += 1
            if number > n:
                break
            state, level = "issued", 0
            if number % 3 == 0:
                state = "settled"
            elif number % 10 == 1:
                level = 1 + (number % 20 == 1)
            elif number % 97 == 0:
                state = "cancelled"
            elif number % 89 == 0:
                state = "written_off"
            invoices.append({"id": number, "site_id": "big", "number": number,
                             "kind": "invoice", "account_id": f"t{k + 1}", "period": period,
                             "state": state, "reminder_level": level,
                             "issue_date": f"{period}-28", "due_date": f"{period}-28",
                             "issued_at": datetime(2025, 1, 1, tzinfo=UTC),
                             "total_due": "480.50", "inputs": "{}",
                             "document": _document(k, f"t{k + 1}", f"Tenant {k + 1}", period)})
            # every row with the same keys: an executemany takes the first row's
            events.append({"invoice_id": number, "date": f"{period}-28", "kind": "issue",
                           "amount": None, "note": None})
            if state == "settled":
                events.append({"invoice_id": number, "date": f"{period}-28",
                               "kind": "payment", "amount": "480.50", "note": None})
            for r in range(level):
                events.append({"invoice_id": number, "date": f"{period}-28",
                               "kind": "reminder", "amount": ("0.00", "20.00")[r],
                               "note": f"R{r + 1}"})
    with engine.begin() as conn:
        conn.execute(billing_invoices.insert(), invoices)
        conn.execute(billing_events.insert(), events)
    engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invoices", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--db", help="database URL (default: a new SQLite file)")
    args = ap.parse_args()

    from console_kit import PASSWORD, Browserless, serve

    from sitegate.cloud.auth import users
    from sitegate.cloud.billing import ops
    from sitegate.cloud.store import console
    from sitegate.cloud.store.db import make_engine

    db = args.db or str(Path(tempfile.mkdtemp(prefix="bench-console-")) / "cloud.db")
    build(db, args.invoices)
    engine = make_engine(db)
    users.add_user(engine, "op@example.ch", "Op", users.check_role("operator", "big", None),
                   password=PASSWORD)

    def bare() -> None:
        with engine.connect() as conn:
            console.invoice_summaries(conn, "big")
            console.event_amounts(conn, "big")

    with serve(db) as url:
        b = Browserless(url)
        assert b.login("op@example.ch") == 303
        pages = {
            "page: all periods": "/web/sites/big/invoices",
            "page: one period + drill-down": "/web/sites/big/invoices?period=2025-06",
            "page: 1 building's points": "/web/sites/big/invoices?" + "&".join(
                f"point=apt-{k}" for k in range(1, 171, 4)),
        }
        code, html, _ = b.get(pages["page: all periods"])
        assert code == 200 and "Reminder 3" in html, code
        cases = {"bare queries (2 SELECTs)": bare,
                 **{name: (lambda p=path: b.get(p)) for name, path in pages.items()},
                 "JSON API's ops.overview": lambda: ops.overview(engine, "big", None)}
        # interleaved: every case once per round, so that the load of a shared machine
        # (it changes by the minute) weighs on all of them alike
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                results[name].append(timed(fn) * 1000)
    with engine.connect() as conn:
        n = len(console.invoice_summaries(conn, "big"))
    print(f"invoices overview, {n} invoices, {args.rounds} rounds, "
          f"{date.today().isoformat()}, {db.split('://')[0] if '://' in db else 'sqlite'}")
    print(f"{'':34} {'median ms':>10} {'p90 ms':>8}   limit {LIMIT_MS:.0f} ms")
    worst = 0.0
    for name, ms in results.items():
        med = statistics.median(ms)
        p90 = sorted(ms)[int(0.9 * (len(ms) - 1))]
        if name.startswith("page"):
            worst = max(worst, med)
        print(f"{name:34} {med:10.1f} {p90:8.1f}")
    ok = worst < LIMIT_MS
    print(f"slowest page median {worst:.1f} ms: {'within' if ok else 'OVER'} the limit")
    engine.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
