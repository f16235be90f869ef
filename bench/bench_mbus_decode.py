"""Frames decoded per second: ours (pymbusparser + our fixes, exact decimals) against
pyMeterBus on the same 76 real libmbus frames, in one run.

    .venv/bin/python bench/bench_mbus_decode.py

Both decode every record's value; pyMeterBus's ``to_JSON`` is its full decoding path (it
computes values lazily, so the bare ``load`` alone would not be a fair comparison).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import meterbus

from sitegate.drivers.mbus.decode import DecodeError, decode_telegram

FRAMES = [bytes.fromhex(json.loads(line)["frame_hex"]) for line in
          (Path(__file__).resolve().parent.parent / "tests" / "data" / "libmbus"
           / "expected.jsonl").read_text().splitlines()]


def ours(raw: bytes) -> int:
    try:
        return len(decode_telegram(raw).records)
    except DecodeError:
        return -1


def pymeterbus(raw: bytes) -> int:
    try:
        frame = meterbus.load(raw)
        frame.to_JSON()
        return len(frame.body.bodyPayload.records)
    except Exception:  # pyMeterBus raises many kinds; a failure still costs its time
        return -1


def rate(fn, seconds: float = 3.0) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    ok = sum(1 for f in FRAMES if fn(f) >= 0)
    records = sum(max(fn(f), 0) for f in FRAMES)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for f in FRAMES:
            fn(f)
        n += len(FRAMES)
    return n / (time.perf_counter() - start), ok, records


def main() -> None:
    print(f"{len(FRAMES)} libmbus frames, each decoded to all its records\n")
    print(f"{'decoder':28s} {'frames/s':>10s} {'decoded':>8s} {'records':>8s}")
    results = {}
    for name, fn in (("ours (pymbusparser+fixes)", ours), ("pyMeterBus 0.8.5", pymeterbus)):
        r, ok, recs = rate(fn)
        results[name] = r
        print(f"{name:28s} {r:10.0f} {ok:5d}/{len(FRAMES)} {recs:8d}")
    a, b = results.values()
    print(f"\nours / pyMeterBus: {a / b:.1f}x")


if __name__ == "__main__":
    main()
