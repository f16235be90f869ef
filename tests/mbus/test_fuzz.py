"""Random and mutated frames: the decoder raises DecodeError or returns, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitegate.drivers.mbus.decode import DecodeError, decode_telegram
from sitegate.drivers.mbus.frames import checksum

FRAMES = [bytes.fromhex(json.loads(line)["frame_hex"]) for line in
          (Path(__file__).parent.parent / "data" / "libmbus" / "expected.jsonl")
          .read_text().splitlines()]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_error(raw: bytes) -> None:
    try:
        t = decode_telegram(raw)
    except DecodeError as exc:
        assert str(exc)
        return
    for r in t.records:  # whatever came back is well-formed
        assert isinstance(r.storage, int) and isinstance(r.unit, str)
        r.to_dict()
    t.to_dict()


def refit(body: bytes) -> bytes:
    """A long frame around ``body`` with correct length and checksum, so the mutation
    reaches the application layer instead of failing the link-layer checks."""
    body = body[:255]
    return bytes((0x68, len(body), len(body), 0x68)) + body + bytes((checksum(body), 0x16))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    decode_or_error(data)


@FUZZ
@given(st.binary(min_size=3, max_size=252))
def test_random_bodies_with_valid_framing(body: bytes) -> None:
    decode_or_error(refit(body))


@FUZZ
@given(st.sampled_from(FRAMES), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)),
                                         min_size=1, max_size=6),
       st.integers(0, 40), st.booleans())
def test_mutated_real_frames(frame: bytes, edits: list[tuple[int, int]], cut: int,
                             fix_framing: bool) -> None:
    body = bytearray(frame[4:-2])
    for pos, value in edits:
        body[pos % len(body)] = value
    if cut:
        body = body[:max(3, len(body) - cut)]
    decode_or_error(refit(bytes(body)) if fix_framing else bytes(frame[:4]) + bytes(body))


def test_nan_real_is_no_value() -> None:
    # DIF 05 (32-bit real) VIF 13 (volume, l): 0x7FC00000 is NaN
    t = decode_telegram(refit(bytes.fromhex("080172") + bytes(12) + bytes.fromhex("05130000C07F")))
    assert t.records[0].value is None and "unreadable_value" in t.records[0].flags
