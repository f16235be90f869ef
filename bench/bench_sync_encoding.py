"""Uplink encoding: JSON against msgpack and CBOR, each with and without zlib.

One batch of 500 readings (a building's quarter-hour: meters x quantities). JSON is
spliced as the gateway does it: the buffer's stored JSON texts joined into the envelope,
no decode/re-encode; msgpack and CBOR must first decode each stored row. "ours" is what
``protocol.encode_batch`` sends (spliced JSON + zlib). Prints bytes per reading and
microseconds per reading to encode and to decode.

    python bench/bench_sync_encoding.py
"""

from __future__ import annotations

import json
import sys
import timeit
import zlib
from collections.abc import Callable
from typing import Any

from sitegate.sync import protocol as p

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from bench_sync_drain import reading  # noqa: E402

ROWS = 500


def main() -> int:
    texts = [json.dumps(reading(n).to_dict(), separators=(",", ":")) for n in range(ROWS)]
    codecs: list[tuple[str, Callable[[], bytes], Callable[[bytes], Any]]] = []
    def spliced() -> bytes:
        head = f'{{"v":1,"stream":"readings","first":1,"last":{ROWS},"items":['
        return (head + ",".join(texts) + "]}").encode()

    codecs.append(("JSON, spliced", spliced, json.loads))

    def envelope() -> dict[str, Any]:
        return {"v": 1, "stream": "readings", "first": 1, "last": ROWS,
                "items": [json.loads(x) for x in texts]}

    try:
        import msgpack

        codecs.append(("msgpack", lambda: msgpack.packb(envelope()), msgpack.unpackb))
    except ImportError:
        print("msgpack not installed (pip install msgpack): skipped")
    try:
        import cbor2

        codecs.append(("CBOR", lambda: cbor2.dumps(envelope()), cbor2.loads))
    except ImportError:
        print("cbor2 not installed (pip install cbor2): skipped")
    for name, enc, dec in list(codecs)[1:]:
        codecs.append((f"{name} + zlib", lambda enc=enc: zlib.compress(enc(), 6),
                       lambda b, dec=dec: dec(zlib.decompress(b))))
    codecs.append(("JSON, spliced + zlib (ours)", lambda: p.encode_batch("readings", 1, texts),
                   lambda b: json.loads(p.inflate(b))))

    print(f"one batch of {ROWS} readings; per reading:")
    print(f"{'encoding':28}{'bytes':>8}{'encode us':>11}{'decode us':>11}")
    for name, enc, dec in codecs:
        blob = enc()
        n_enc = timeit.Timer(enc).autorange()
        n_dec = timeit.Timer(lambda blob=blob, dec=dec: dec(blob)).autorange()
        print(f"{name:28}{len(blob) / ROWS:>8.1f}{n_enc[1] / n_enc[0] / ROWS * 1e6:>11.2f}"
              f"{n_dec[1] / n_dec[0] / ROWS * 1e6:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
