"""Stays and payments at the size of a large holiday park, on SQLite, in one run:

    .venv/bin/python bench/bench_stays_payments.py [UNITS]     (default 1000)

1. the bulk readings of check-out day for all UNITS chalets (2 meters each: 2 x UNITS rows,
   every value checked against the unit's last one) and the check-out run over all units
   (each stay settled into an issued invoice), beside the bare reading of the same readings
   table (the floor any run needs);
2. a camt.054 of UNITS credits paying those invoices (QR references), imported, beside the
   bare defusedxml parse of the same bytes.

Targets (ours, for a park's busiest day): bulk entry + run for 1,000 units < 30 s; a
1,000-credit statement < 30 s.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from benchkit import ROOT

sys.path.insert(0, str(ROOT / "tests" / "payments"))

import defusedxml.ElementTree as DET  # noqa: E402
from camtfile import document  # noqa: E402

from sitegate.cloud.billing import ops as billing_ops  # noqa: E402
from sitegate.cloud.billing.qrref import qr_reference  # noqa: E402
from sitegate.cloud.billing.sitemodel import load_site  # noqa: E402
from sitegate.cloud.payments import ops as payments  # noqa: E402
from sitegate.cloud.stays import ops as stays  # noqa: E402
from sitegate.cloud.store import stays as stays_store  # noqa: E402
from sitegate.cloud.store.db import make_engine, upgrade  # noqa: E402

TARGET_STAYS, TARGET_CAMT = 30.0, 30.0


def main(n: int) -> None:
    db = str(Path(tempfile.mkdtemp()) / "bench.db")
    upgrade(db)
    e = make_engine(db)
    billing_ops.import_site(e, load_site(ROOT / "config/examples/stays/site-campsite.toml"))
    units = [f"U{i:05d}" for i in range(n)]
    stays.import_units(e, None, {
        "unit_types": [{"id": "chalet", "name": "Chalet"}],
        "units": [{"id": u, "type": "chalet", "name": u,
                   "meters": [{"id": "power", "utility": "electricity"},
                              {"id": "water", "utility": "water"}]} for u in units],
        "categories": [{"id": "guest", "eligible": True}],
        "rates": [{"id": "p", "utility": "electricity", "price": "0.35", "admin_fee": "5"},
                  {"id": "w", "utility": "water", "price": "4.20", "vat": "2.6"}]})
    res = []
    for u in units:
        res.append({"id": f"Y-{u}", "unit": u, "status": "checked_in", "category": "guest",
                    "from": "2026-01-01", "to": "2026-12-31", "guest": {"name": f"Gast {u}"}})
        res.append({"id": f"S-{u}", "parent": f"Y-{u}", "status": "checked_in",
                    "from": "2026-07-01", "to": "2026-07-14", "deposit": "20.00"})
    stays.import_reservations(e, None, res)
    first = [{"unit": u, "meter": m, "value": v} for u in units
             for m, v in (("power", "1000"), ("water", "50"))]
    stays.enter_readings(e, None, "a.json", json.dumps(first).encode(), "bench", None,
                         date(2026, 7, 1))
    last = [{"unit": u, "meter": m, "value": v} for i, u in enumerate(units)
            for m, v in (("power", str(1000 + 50 + i % 40)), ("water", "51.5"))]
    t0 = time.perf_counter()
    with e.connect() as conn:
        rows = stays_store.unit_readings(conn, "seeblick")
    t_select = time.perf_counter() - t0
    t0 = time.perf_counter()
    stays.enter_readings(e, None, "b.json", json.dumps(last).encode(), "bench", "chalet",
                         date(2026, 7, 14))
    t_bulk = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = stays.run(e, None, date(2026, 7, 14), issue=True)
    t_run = time.perf_counter() - t0
    assert len(run["settled"]) == n and not run["skipped"]
    total = t_bulk + t_run
    print(f"stays: {n} units, {len(rows)} readings before the bulk list")
    print(f"{'bare SELECT s':>14} {'bulk s':>8} {'run s':>8} {'bulk+run s':>11} {'target':>12}")
    print(f"{t_select:14.2f} {t_bulk:8.2f} {t_run:8.2f} {total:11.2f} "
          f"{f'< {TARGET_STAYS:.0f} s':>9} {'met' if total < TARGET_STAYS else 'MISSED'}")

    invoices = {s["invoice"]: s["total_due"] for s in run["settled"]}
    entries = [{"bank_ref": f"B{k}", "amount": due, "ref": qr_reference("77", num)}
               for k, (num, due) in enumerate(sorted(invoices.items()))]
    data = document(entries)
    t0 = time.perf_counter()
    for _ in DET.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True):
        pass
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = payments.import_statement(e, None, "bench.xml", data)
    t_imp = time.perf_counter() - t0
    assert len(r["matched"]) == n, r["unmatched"][:3]
    print(f"payments: camt.054 of {n} credits, {len(data)} bytes")
    print(f"{'bare parse s':>14} {'import s':>9} {'target':>12}")
    print(f"{t_parse:14.2f} {t_imp:9.2f} {f'< {TARGET_CAMT:.0f} s':>9} "
          f"{'met' if t_imp < TARGET_CAMT else 'MISSED'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
