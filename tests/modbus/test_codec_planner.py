from __future__ import annotations

from decimal import Decimal

import pytest

from sitegate.drivers.modbus.codec import DecodeError, decode, encode
from sitegate.drivers.modbus.planner import plan
from sitegate.drivers.modbus.profile import Profile, ProfileError, load_profile_file


@pytest.mark.parametrize(
    ("words", "type_", "order", "scale", "expected"),
    [
        ([0x4366, 0x199A], "float32", "big", "1", "230.1"),  # IEEE 754 of 230.1
        ([0x199A, 0x4366], "float32", "little", "1", "230.1"),
        ([0xFFFF], "int16", "big", "0.1", "-0.1"),
        ([0x0001, 0x86A0], "uint32", "big", "0.01", "1000.00"),  # 100000 x 0.01
        ([0x86A0, 0x0001], "int32", "little", "0.01", "1000.00"),
        ([0, 0, 0x0001, 0x86A0], "uint64", "big", "0.001", "100.000"),
        ([0x4059, 0, 0, 0], "float64", "big", "1", "100"),
    ],
)
def test_decode_known_words(words, type_, order, scale, expected) -> None:  # type: ignore[no-untyped-def]
    assert decode(words, type_, order, Decimal(scale)) == Decimal(expected)


def test_encode_is_inverse() -> None:
    for type_ in ("int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"):
        for order in ("big", "little"):
            words = encode(Decimal("123.4"), type_, order, Decimal("0.1"))
            assert decode(words, type_, order, Decimal("0.1")) == Decimal("123.4")


def test_nan_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode([0x7FC0, 0], "float32", "big", Decimal(1))


def _profile(registers: list[dict], **limits) -> Profile:  # type: ignore[no-untyped-def]
    return Profile.model_validate({"name": "t", "vendor": "v", "model": "m", "source": "s",
                                   "limits": limits, "registers": registers})


def _reg(q: str, addr: int, type_: str = "float32") -> dict:  # type: ignore[type-arg]
    return {"quantity": q, "address": addr, "type": type_, "unit": "V"}


def test_planner_coalesces_small_gaps_and_respects_limits() -> None:
    p = _profile([_reg("1-0:1.8.0", 0), _reg("1-0:2.8.0", 4), _reg("1-0:3.8.0", 40)],
                 max_registers=10, max_gap=2)
    blocks = plan(p)
    assert [(b.start, b.count) for b in blocks] == [(0, 6), (40, 2)]
    p = _profile([_reg(f"1-0:{i}.8.0", i * 2) for i in range(1, 11)], max_registers=8)
    blocks = plan(p)  # registers 2..21 in blocks of at most 8
    assert all(b.count <= 8 for b in blocks) and len(blocks) == 3


def test_planner_never_crosses_a_hole() -> None:
    data = {"name": "t", "vendor": "v", "model": "m", "source": "s", "holes": [[2, 3]],
            "registers": [_reg("1-0:1.8.0", 0), _reg("1-0:2.8.0", 4)]}
    assert len(plan(Profile.model_validate(data))) == 2
    data["holes"] = []
    assert len(plan(Profile.model_validate(data))) == 1


def test_separate_blocks_per_function() -> None:
    p = _profile([_reg("1-0:1.8.0", 0) | {"function": "holding"},
                  _reg("1-0:2.8.0", 2) | {"function": "input"}])
    assert sorted(b.function for b in plan(p)) == ["holding", "input"]


def test_broken_profiles_name_the_problem(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.toml"
    f.write_text('vendor="v"\nmodel="m"\nsource="s"\n'
                 '[[registers]]\nquantity="1-0:1.8.0"\naddress=0\ntype="float32"\nunit="kWh"\n'
                 '[[registers]]\nquantity="1-0:2.8.0"\naddress=1\ntype="float32"\nunit="kWh"\n')
    with pytest.raises(ProfileError, match=r"1-0:2.8.0 .*overlaps 1-0:1.8.0"):
        load_profile_file(f)
    f.write_text('vendor="v"\nmodel="m"\nsource="s"\n'
                 '[[registers]]\nquantity="1-0:1.8.0"\naddress=0\ntype="float24"\nunit="kWh"\n')
    with pytest.raises(ProfileError, match=r"registers.0.type"):
        load_profile_file(f)
