"""M-Bus profiles (data) and the telegram -> readings rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sitegate.drivers.mbus.decode import decode_telegram
from sitegate.drivers.mbus.emulator import recording
from sitegate.drivers.mbus.frames import long_frame
from sitegate.drivers.mbus.profile import ProfileError, load_profile, parse_profile, profile_names
from sitegate.drivers.mbus.readings import to_result

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def header(status: int = 0) -> bytes:
    # id 12345678, manufacturer KAM (0x2C2D), version 1, medium 04 heat, access 7
    return bytes.fromhex("78563412" "2D2C" "01" "04" "07") + bytes((status,)) + b"\0\0"


def telegram(status: int, records: str) -> bytes:
    return long_frame(0x08, 5, 0x72, header(status) + bytes.fromhex(records))


def test_every_profile_loads() -> None:
    names = profile_names()
    assert {"mbus_generic", "kamstrup_multical_601", "landis_gyr_ultraheat_t230",
            "itron_cyble_water"} <= set(names)
    for name in names:
        load_profile(name)


def test_bad_profiles_are_refused() -> None:
    with pytest.raises(ProfileError, match="unknown M-Bus profile"):
        load_profile("no_such_meter")
    with pytest.raises(ProfileError, match="unknown keys"):
        parse_profile("x", {"map": [{"record": "Energy", "name": "e", "scale": 2}]})
    with pytest.raises(ProfileError, match="same record"):
        parse_profile("x", {"map": [{"record": "Energy", "name": "a"},
                                    {"record": "Energy", "name": "b"}]})
    with pytest.raises(ProfileError, match="snake_case"):
        parse_profile("x", {"map": [{"record": "Energy", "name": "Heat Energy"}]})


def test_kamstrup_profile_due_date_values_by_storage() -> None:
    t = decode_telegram(recording("kamstrup_multical_601"))
    got = {r.quantity: (r.value, r.unit) for r in to_result(
        "h1", [t], load_profile("kamstrup_multical_601"), NOW, NOW).readings}
    # 44 06 51 82 00 00: storage 1, 0x8251 = 33361 kWh (energy at the last target date)
    assert got["heat_energy.s1"] == (Decimal("33361"), "kWh")
    # 04 2D 5B 01 00 00: 0x15B = 347 x 100 W = 34.7 kW
    assert got["power"] == (Decimal("34.7"), "kW")
    # 04 22 D9 03 00 00: 985 h, through seconds and back, exactly
    assert got["on_time"] == (Decimal("985"), "h")


def test_generic_profile_keeps_every_numeric_record() -> None:
    # 0C 13 ...: volume 8-digit BCD in litres; 4C 13: storage 1; 1C 13: maximum; 8C 10 13:
    # tariff 1 (DIFE 0x10)
    raw = telegram(0, "0C1356341200" "4C1312000000" "1C1399000000" "8C101301000000")
    got = {r.quantity: r.value for r in to_result(
        "w", [decode_telegram(raw)], load_profile("mbus_generic"), NOW, NOW).readings}
    assert got == {"volume": Decimal("123.456"), "volume.s1": Decimal("0.012"),
                   "volume.max": Decimal("0.099"), "volume.t1": Decimal("0.001")}


def test_status_error_flags_every_value() -> None:
    raw = telegram(0x10, "0C1356341200")  # status bit 4: temporary error
    res = to_result("w", [decode_telegram(raw)], load_profile("mbus_generic"), NOW, NOW)
    (r,) = res.readings
    assert r.quality == "suspect"
    assert r.flags == ("meter_status_error", "meter_temporary_error")
    raw = telegram(0x08, "0C1356341200")  # bit 3: permanent error -> not billable
    (r,) = to_result("w", [decode_telegram(raw)], load_profile("mbus_generic"), NOW,
                     NOW).readings
    assert r.quality == "invalid"


def test_partial_frame_keeps_what_it_read_flags_it_and_raises_an_event() -> None:
    # a good volume record, then a record cut short (DIF 0C wants 4 data bytes, 2 sent)
    raw = telegram(0, "0C1356341200" "0C13FFFF")
    t = decode_telegram(raw)
    assert t.partial
    res = to_result("w", [t], load_profile("mbus_generic"), NOW, NOW)
    (r,) = res.readings
    assert r.value == Decimal("123.456") and "partial_frame" in r.flags
    (ev,) = [e for e in res.events if e["kind"] == "mbus_partial_frame"]
    assert ev["raw_hex"] == raw.hex().upper()


def test_error_bcd_value_becomes_an_event_not_a_number() -> None:
    raw = telegram(0, "0C13BDEBDDDD" "0C1356341200")
    res = to_result("w", [decode_telegram(raw)], load_profile("mbus_generic"), NOW, NOW)
    assert [r.value for r in res.readings] == [Decimal("123.456")]
    assert any(e["kind"] == "mbus_unreadable_value" and e["raw_hex"] == "0C13BDEBDDDD"
               for e in res.events)
