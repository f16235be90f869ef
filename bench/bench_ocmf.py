"""Signed meter values (OCMF): what checking them costs, side by side with what the same
work costs without them, in one run.

Gateway: the check a completed session gets before the charger's StopTransaction is
answered (two records, P-256: parse, two ECDSA verifications, transaction rules), per
session, against the limit a charger allows for the answer. Cloud: billing's reading of N
completed session reports (``sessions_in``) with signed begin and end records and a
calibrated charger, against the same reports without signed values.

    .venv/bin/python bench/bench_ocmf.py [--sessions 500]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sitegate.cloud.billing.sessions import sessions_in
from sitegate.cloud.billing.sitemodel import parse_site
from sitegate.common import ocmf
from sitegate.common.ocmf_sign import SigningMeter
from sitegate.sync.protocol import SessionRecord, SignedMeterValue

ANSWER_LIMIT_S = 30.0  # a charger's usual OCPP response timeout


def _records(n: int, meter: SigningMeter, signed: bool) -> list[tuple[str, str, int, str]]:
    rows = []
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    for i in range(n):
        start, stop = t0 + timedelta(hours=3 * i), t0 + timedelta(hours=3 * i + 2)
        wh0, wh1 = 1000 * i, 1000 * i + 7500
        sv = []
        if signed:
            for at, tx, wh, ctx in ((start, "B", wh0, "Transaction.Begin"),
                                    (stop, "E", wh1, "Transaction.End")):
                sv.append(SignedMeterValue(ts=at, context=ctx, source="StopTransaction",
                                           data=meter.record([(at, tx, Decimal(wh).scaleb(-3))],
                                                             badge="04A23BC1")))
        rec = SessionRecord(session_id=f"CP1-{i}", charge_point="CP1", connector=1,
                            badge="04A23BC1", start=start, stop=stop,
                            meter_start_wh=Decimal(wh0), meter_stop_wh=Decimal(wh1),
                            energy_wh=Decimal(7500), status="completed", calibrated=signed,
                            signed_values=sv, public_key=meter.public_key_hex if signed else None)
        rows.append(("gw", rec.session_id, int(stop.timestamp()),
                     json.dumps(rec.to_payload())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=500)
    n = ap.parse_args().sessions
    meter = SigningMeter()
    model = parse_site({
        "site": {"id": "s", "name": "S", "gateways": ["gw"],
                 "creditor": {"name": "V", "street": "S", "house_num": "1", "pcode": "8000",
                              "city": "Z", "iban": "CH44 3199 9123 0008 8901 2"}},
        "buildings": [{"id": "h", "name": "H"}], "billing_points": [], "tariffs": [],
        "accounts": [{"id": "o", "name": "O", "kind": "owner"}],
        "chargers": [{"id": "CP1", "public_key": meter.public_key_hex}]})
    signed, plain = _records(n, meter, True), _records(n, meter, False)

    docs = [ocmf.SignedDoc(v["context"], v["data"]) for v in
            json.loads(signed[0][3])["signed_values"]]
    t = time.perf_counter()
    for _ in range(n):
        c = ocmf.verify_session(docs, meter.public_key_hex, calibrated=True,
                                energy_wh=Decimal(7500))
    per_session = (time.perf_counter() - t) / n
    assert c.status == "verified", c.problems

    timings = {}
    for name, rows in (("without signed values", plain), ("with signed values", signed)):
        issues: list = []
        t = time.perf_counter()
        got = sessions_in(rows, 0, issues, model, {}, [])
        timings[name] = time.perf_counter() - t
        assert len(got) == n and not issues
        if name == "with signed values":
            assert all(s.signed and s.signed["status"] == "verified" for s in got)
    print(f"gateway: check of one session (begin + end, P-256)   {per_session * 1000:8.2f} ms"
          f"   limit: the charger's answer within {ANSWER_LIMIT_S:.0f} s")
    for name, secs in timings.items():
        print(f"cloud: billing reads {n} session reports {name:22} {secs:8.2f} s"
              f"   ({n / secs:,.0f}/s)")
    print(f"cloud: overhead of the second check   x{timings['with signed values'] / timings['without signed values']:.1f}")  # noqa: E501


if __name__ == "__main__":
    main()
