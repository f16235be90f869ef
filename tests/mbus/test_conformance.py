"""Conformance against libmbus's real test frames and their normalised decodings."""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from libmbus_compare import differences

from sitegate.drivers.mbus.decode import DecodeError, decode_telegram

DATA = Path(__file__).parent.parent / "data" / "libmbus"
EXPECTED = [json.loads(line) for line in (DATA / "expected.jsonl").read_text().splitlines()]
KNOWN = tomllib.loads((Path(__file__).parent / "known_differences.toml").read_text())["frames"]


def test_the_whole_set_is_there() -> None:
    assert len(EXPECTED) == 76
    assert sum(len(e["records"]) for e in EXPECTED) == 942
    assert len({e["frame_hex"][14:22] for e in EXPECTED}) > 30  # many meters, not one


@pytest.mark.parametrize("case", EXPECTED, ids=[e["name"] for e in EXPECTED])
def test_frame_decodes_like_libmbus(case: dict) -> None:
    telegram = decode_telegram(case["frame_hex"])
    assert telegram.problems == []
    diff = differences(telegram.records, case["records"])
    known = KNOWN.get(case["name"])
    if known is None:
        assert diff == {}
    else:
        assert sorted(diff) == sorted(known["records"]), diff  # the list is exact, not stale
        assert known["reason"]


def test_known_differences_name_real_frames() -> None:
    assert set(KNOWN) <= {e["name"] for e in EXPECTED}


def test_identity_from_header() -> None:
    case = next(e for e in EXPECTED if e["name"] == "kamstrup_multical_601")
    t = decode_telegram(case["frame_hex"])
    info = case["slave_information"]
    assert t.identity is not None
    assert t.identity.id == info["Id"].zfill(8)
    assert t.identity.manufacturer == info["Manufacturer"]
    assert t.identity.version == int(info["Version"])
    assert t.identity.access_number == int(info["AccessNumber"])
    assert t.identity.status == int(info["Status"], 16)


def test_heat_meter_values_exact() -> None:
    """Kamstrup Multical 601, worked out by hand from the bytes."""
    case = next(e for e in EXPECTED if e["name"] == "kamstrup_multical_601")
    t = decode_telegram(case["frame_hex"])
    got = {(r.quantity, r.function, r.storage, r.tariff): (r.value, r.unit)
           for r in t.records[:11]}
    # 04 06 E7 91 00 00: VIF 06 = kWh, 0x91E7 = 37351 kWh
    assert got[("Energy", "instantaneous", 0, 0)] == (Decimal("37351000"), "Wh")
    # 04 14 2C DB 00 00: VIF 14 = 0.01 m3, 0xDB2C = 56108
    assert got[("Volume", "instantaneous", 0, 0)] == (Decimal("561.08"), "m3")
    # 04 22 D9 03 00 00: VIF 22 = on time in hours, 0x3D9 = 985 h
    assert got[("On time", "instantaneous", 0, 0)] == (Decimal("3546000"), "s")
    # 04 59 B9 27 00 00: VIF 59 = 0.01 degC, 0x27B9 = 10169
    assert got[("Flow temperature", "instantaneous", 0, 0)] == (Decimal("101.69"), "°C")
    # 14 2D C0 01 00 00: maximum, VIF 2D = 100 W, 0x1C0 = 448
    assert got[("Power", "maximum", 0, 0)] == (Decimal("44800"), "W")
    assert t.flags == [] and t.identity is not None and t.identity.id == "06855817"


def test_float_values_get_their_power_of_ten() -> None:
    """pymbusparser 0.5.3 drops the VIF exponent on 32-bit reals; we put it back.
    EDC #8: 85 00 3B, real 0x3F350084 = 0.70703912 x 10^-3 m3/h."""
    case = next(e for e in EXPECTED if e["name"] == "EDC")
    rec = decode_telegram(case["frame_hex"]).records[8]
    assert rec.value == Decimal("0.7070391178131104") * Decimal("0.001")
    assert rec.unit == "m3/h"


ERROR_FRAMES = sorted((DATA / "error-frames").glob("*.hex"))
UNSUPPORTED = sorted((DATA / "unsupported-frames").glob("*.hex"))


@pytest.mark.parametrize("path", ERROR_FRAMES + UNSUPPORTED, ids=lambda p: p.stem)
def test_error_frames_give_a_clear_error(path: Path) -> None:
    try:
        t = decode_telegram(path.read_text())
    except DecodeError as exc:
        assert str(exc) and exc.kind
        return
    # Read in part: the records it could read, and why the rest is missing.
    if path.parent.name == "error-frames" and path.stem not in ("too_many_dife",):
        assert t.problems, "an error frame decoded without a problem noted"
