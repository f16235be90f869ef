"""The Modbus device profiles as data: every file loads, names its source, uses OBIS names and
kWh for energy, keeps its registers apart and its blocks within the device's limits; a broken
profile is refused with an error that names the register. Known raw words decode to the
values worked out by hand from the vendors' own examples."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from sitegate.drivers.modbus.codec import decode
from sitegate.drivers.modbus.planner import plan
from sitegate.drivers.modbus.profile import (
    PROFILE_DIR,
    Profile,
    ProfileError,
    load_profile_file,
    profile_names,
)

pytestmark = pytest.mark.timeout(60)

OBIS = re.compile(r"^\d-\d+:\d+\.\d+\.\d+$")
ACTIVE_ENERGY = re.compile(r"^1-0:[12]\.8\.\d+$")
REACTIVE_ENERGY = re.compile(r"^1-0:[34]\.8\.\d+$")
EXPECTED = {
    "abb_b23", "carlo_gavazzi_em24", "carlo_gavazzi_em340", "eastron_sdm120",
    "eastron_sdm630", "eastron_sdm72dm", "finder_7m", "janitza_umg604", "saia_ale3",
    "schneider_iem3155",
}
NAMES = profile_names()


def _load(name: str) -> Profile:
    return load_profile_file(PROFILE_DIR / f"{name}.toml")


def test_all_issue_3_profiles_are_present() -> None:
    assert EXPECTED <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_profile_loads_and_names_its_source(name: str) -> None:
    profile = _load(name)
    assert profile.name == name
    assert profile.registers
    assert profile.source.strip() and profile.vendor.strip() and profile.model.strip()
    # The header comment is where the address convention and quirks are explained.
    assert (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8").startswith("#")


@pytest.mark.parametrize("name", NAMES)
def test_quantities_are_obis_and_energy_is_kwh(name: str) -> None:
    profile = _load(name)
    for reg in profile.registers:
        assert OBIS.match(reg.quantity), reg.quantity
        if ACTIVE_ENERGY.match(reg.quantity):
            assert reg.unit == "kWh", reg.quantity
        if REACTIVE_ENERGY.match(reg.quantity):
            assert reg.unit == "kvarh", reg.quantity
        if reg.quantity.endswith((":16.7.0", ":21.7.0", ":41.7.0", ":61.7.0")):
            assert reg.unit == "W", reg.quantity  # kW registers are scaled to W
    # Every meter bills import energy: a total or at least tariff 1.
    assert {"1-0:1.8.0", "1-0:1.8.1"} & {r.quantity for r in profile.registers}


@pytest.mark.parametrize("name", NAMES)
def test_registers_do_not_overlap_and_blocks_fit(name: str) -> None:
    """Checked here independently of the loader, so a loosened loader cannot hide it."""
    profile = _load(name)
    for function in ("holding", "input"):
        spans = sorted(
            (r.address, r.address + r.width, r.quantity)
            for r in profile.registers if profile.function_of(r) == function
        )
        for (_a0, a1, q0), (b0, _b1, q1) in zip(spans, spans[1:], strict=False):
            assert b0 >= a1, f"{q1} overlaps {q0}"
    for block in plan(profile):
        assert block.count <= profile.limits.max_registers
        assert not any(h0 < block.end and block.start < h1 for h0, h1 in profile.holes)
        covered = {a for r in block.registers for a in range(r.address, r.address + r.width)}
        assert covered <= set(range(block.start, block.end))


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("eastron_")])
def test_eastron_blocks_are_register_pairs(name: str) -> None:
    """Eastron answers an exception when a request starts or ends inside a float."""
    for block in plan(_load(name)):
        assert block.start % 2 == 0 and block.count % 2 == 0, (block.start, block.count)


def _register(name: str, quantity: str):  # noqa: ANN202 - a Register of that profile
    profile = _load(name)
    reg = next(r for r in profile.registers if r.quantity == quantity)
    return reg, profile.word_order_of(reg)


@pytest.mark.parametrize(
    ("name", "quantity", "words", "expected"),
    [
        # SDM120 protocol V2.5 example response 43 66 33 34, "Volts 1 as 230.2": the bytes are
        # one float32 step above 230.2 (43 66 33 33), so exactly 230.20001 is what they say.
        ("eastron_sdm120", "1-0:32.7.0", [0x4366, 0x3334], Decimal("230.20001")),
        ("eastron_sdm120", "1-0:32.7.0", [0x4366, 0x3333], Decimal("230.2")),
        # ALE3 datasheet example: WT1 total High = 13, Low = 60383 -> 912351 -> 9123.51 kWh.
        ("saia_ale3", "1-0:1.8.1", [13, 60383], Decimal("9123.51")),
        # ALE3 power in 0.01 kW: 314 -> 3.14 kW -> 3140 W; -5 -> -50 W (int16).
        ("saia_ale3", "1-0:21.7.0", [314], Decimal("3140")),
        ("saia_ale3", "1-0:16.7.0", [0xFFFB], Decimal("-50")),
        # ABB uint64 in 0.01 kWh: 0x0001_86A0 = 100000 -> 1000.00 kWh.
        ("abb_b23", "1-0:1.8.0", [0, 0, 0x0001, 0x86A0], Decimal("1000.00")),
        # ABB int32 power in 0.01 W: 0xFFFF_FF9C = -100 -> -1.00 W.
        ("abb_b23", "1-0:16.7.0", [0xFFFF, 0xFF9C], Decimal("-1.00")),
        # Carlo Gavazzi INT32 low word first: words 86A0, 0001 = 100000 -> 10000.0 kWh.
        ("carlo_gavazzi_em340", "1-0:1.8.0", [0x86A0, 0x0001], Decimal("10000.0")),
        ("carlo_gavazzi_em24", "1-0:32.7.0", [2304, 0], Decimal("230.4")),
        # Schneider INT64 Wh: 0x000F_4240 = 1000000 Wh -> 1000.000 kWh.
        ("schneider_iem3155", "1-0:1.8.0", [0, 0, 0x000F, 0x4240], Decimal("1000.000")),
        # Schneider power float32 in kW: 0x3FC0_0000 = 1.5 kW -> 1500 W.
        ("schneider_iem3155", "1-0:16.7.0", [0x3FC0, 0x0000], Decimal("1500.0")),
        # Finder x1000 counter in 0.1 Wh: 0x0098_9680 = 10000000 -> 1000.0000 kWh.
        ("finder_7m", "1-0:1.8.0", [0x0098, 0x9680], Decimal("1000.0000")),
        # Janitza float32 Wh: 0x4974_2400 = 1000000.0 Wh -> 1000 kWh.
        ("janitza_umg604", "1-0:1.8.0", [0x4974, 0x2400], Decimal("1000")),
    ],
)
def test_known_words_decode_to_hand_worked_values(
    name: str, quantity: str, words: list[int], expected: Decimal
) -> None:
    reg, order = _register(name, quantity)
    assert decode(words, reg.type, order, reg.scale) == expected


GOOD_HEAD = """
vendor = "Test"
model = "T1"
source = "none"
function = "input"
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text(GOOD_HEAD + body, encoding="utf-8")
    return path


def test_overlapping_registers_are_refused_naming_both(tmp_path: Path) -> None:
    path = _write(tmp_path, """
[[registers]]
quantity = "1-0:1.8.0"
address = 10
type = "uint64"
unit = "kWh"

[[registers]]
quantity = "1-0:2.8.0"
address = 12
type = "uint32"
unit = "kWh"
""")
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    assert "1-0:2.8.0" in str(err.value) and "1-0:1.8.0" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_type_is_refused_naming_the_quantity(tmp_path: Path) -> None:
    path = _write(tmp_path, """
[[registers]]
quantity = "1-0:32.7.0"
address = 0
type = "float32"
unit = "V"

[[registers]]
quantity = "1-0:1.8.0"
address = 2
type = "uint48"
unit = "kWh"
""")
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    assert "1-0:1.8.0" in str(err.value) and "type" in str(err.value)
    assert "1-0:32.7.0" not in str(err.value)


def test_other_mistakes_are_refused(tmp_path: Path) -> None:
    duplicate = _write(tmp_path, """
[[registers]]
quantity = "1-0:1.8.0"
address = 0
type = "uint32"
unit = "kWh"

[[registers]]
quantity = "1-0:1.8.0"
address = 4
type = "uint32"
unit = "kWh"
""")
    with pytest.raises(ProfileError, match="1-0:1.8.0 is defined twice"):
        load_profile_file(duplicate)

    too_wide = _write(tmp_path, """
[limits]
max_registers = 2

[[registers]]
quantity = "1-0:1.8.0"
address = 0
type = "uint64"
unit = "kWh"
""")
    with pytest.raises(ProfileError, match=r"1-0:1\.8\.0: wider than limits.max_registers"):
        load_profile_file(too_wide)

    garbled = tmp_path / "garbled.toml"
    garbled.write_text("vendor = \n", encoding="utf-8")
    with pytest.raises(ProfileError, match="garbled.toml"):
        load_profile_file(garbled)
