"""Billing one month of 15-min data for sites of 100, 1,000 and 10,000 billing points in a
solar community (grid meter, PV meter): time and peak memory, next to the target.

    .venv/bin/python bench/bench_billing.py [SIZES...]

Each size runs in its own process (peak RSS is per process). Every meter's readings are
its own compact ``Register``, as ``source.load_readings`` hands them over; "RSS w/ readings"
is the peak once they are built, before billing. The time is ``bill_site`` alone
(consumption, allocation per interval, tariffs with peak/off-peak, fees, invoice documents).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

TARGET_S = {1000: 10.0}  # the target: 1,000 billing points in under 10 s


class Ramp:
    """A cumulative register over the grid, re-iterable, never held in memory."""

    def __init__(self, start: int, n: int, inc) -> None:  # type: ignore[no-untyped-def]
        self.start, self.n, self.inc = start, n, inc

    def __iter__(self) -> Iterator[tuple[int, int]]:
        v = 0
        yield self.start, v
        for k in range(self.n):
            v += self.inc(k)
            yield self.start + (k + 1) * 900, v


def one(n_bp: int) -> dict:
    from sitegate.cloud.billing.compute import EXPORT, IMPORT, bill_site
    from sitegate.cloud.billing.periods import grid_for, parse_period
    from sitegate.cloud.billing.registers import Register
    from sitegate.cloud.billing.sitemodel import parse_site

    period = parse_period("2026-01")
    ids = [f"bp{j:05d}" for j in range(n_bp)]
    data = {
        "site": {"id": "bench", "name": "Bench", "gateways": ["gw"], "grid_meter": "main",
                 "pv_meters": ["pv"],
                 "creditor": {"name": "X", "pcode": "8000", "city": "Zürich",
                              "iban": "CH44 3199 9123 0008 8901 2"}},
        "buildings": [{"id": "b", "name": "B"}],
        "meters": [{"id": i, "gateway": "gw"} for i in ids]
        + [{"id": "main", "gateway": "gw"}, {"id": "pv", "gateway": "gw"}],
        "billing_points": [{"id": i, "building": "b", "name": i, "tariff": "t", "owner": "o"}
                           for i in ids],
        "meter_assignments": [{"billing_point": i, "meter": i, "from": "2025-01-01"}
                              for i in ids],
        "accounts": [{"id": "o", "name": "Owner", "kind": "owner"}]
        + [{"id": f"a{i}", "name": i} for i in ids],
        "occupancy": [{"billing_point": i, "account": f"a{i}", "from": "2025-01-01"}
                      for i in ids],
        "tariffs": [{"id": "t", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "solar", "label": "Solar", "applies": "solar", "price": "0.18"},
            {"key": "peak", "label": "HT", "applies": "grid", "tou": "peak", "price": "0.31"},
            {"key": "off", "label": "NT", "applies": "grid", "tou": "offpeak", "price": "0.24"}],
            "fees": [{"key": "m", "label": "Messung", "monthly": "6.20"}]}]}],
    }
    model = parse_site(data)
    grid = grid_for(period, model.tz)

    def day(k: int) -> bool:
        return 28 <= k % 96 < 88

    def cons(j: int):  # type: ignore[no-untyped-def]
        return lambda k: 50_000 + (j % 7) * 10_000 + (30_000 if day(k) else 0)

    s7 = sum(j % 7 for j in range(n_bp))

    def total(k: int) -> int:
        return n_bp * 50_000 + 10_000 * s7 + (n_bp * 30_000 if day(k) else 0)

    def prod(k: int) -> int:
        return n_bp * 60_000 if 40 <= k % 96 < 60 else 0

    # Seven consumption profiles; every meter gets its own Register (two int64 arrays), as
    # source.load_readings hands them over, its values offset so no two are the same.
    profiles = [list(Ramp(grid.start, grid.n, cons(j))) for j in range(7)]
    readings = {i: {IMPORT: Register.of((t, v + j) for t, v in profiles[j % 7])}
                for j, i in enumerate(ids)}
    del profiles
    readings["main"] = {IMPORT: Ramp(grid.start, grid.n, lambda k: max(0, total(k) - prod(k))),
                        EXPORT: Ramp(grid.start, grid.n, lambda k: max(0, prod(k) - total(k)))}
    readings["pv"] = {EXPORT: Ramp(grid.start, grid.n, prod)}
    readings_mb = rss_mb()
    t0 = time.perf_counter()
    run = bill_site(model, period, readings)
    dt = time.perf_counter() - t0
    return {"billing_points": n_bp, "intervals": grid.n, "seconds": round(dt, 2),
            "invoices": len(run.documents),
            "solar_kwh": run.summary["energy_kwh"]["solar"],
            "readings_rss_mb": readings_mb, "peak_rss_mb": rss_mb()}


def rss_mb() -> int:
    """Peak resident memory of this process so far, MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]))))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000, 10000]
    print(f"{'billing points':>14} {'intervals':>9} {'time s':>8} {'per bp ms':>9} "
          f"{'RSS w/ readings':>15} {'peak RSS MB':>11} {'target':>10}")
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out)
        target = TARGET_S.get(n)
        verdict = "" if target is None else \
            f"< {target:g} s {'ok' if r['seconds'] < target else 'MISSED'}"
        print(f"{n:>14} {r['intervals']:>9} {r['seconds']:>8.2f} "
              f"{1000 * r['seconds'] / n:>9.2f} {r['readings_rss_mb']:>15} "
              f"{r['peak_rss_mb']:>11} {verdict:>10}",
              flush=True)


if __name__ == "__main__":
    main()
