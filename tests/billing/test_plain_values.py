"""The store's values parsed many at once (``store.plain``): exactly what Decimal gives for
every plain decimal, and None (read row by row) for anything else."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sitegate.cloud.store.plain import plain_units

# at most 18 digits and sign after scaling: longer ones are read row by row (tested below)
_value = st.builds(
    lambda neg, whole, frac: f"{'-' if neg else ''}{whole}{'.' + frac if frac is not None else ''}",
    st.booleans(), st.integers(0, 10**11 - 1), st.none() | st.text("0123456789", max_size=6))


@given(st.lists(_value, min_size=1, max_size=40))
def test_plain_decimals_exact(values: list[str]) -> None:
    got = plain_units(",".join(values), len(values), 6)
    assert got is not None
    assert got.tolist() == [int(Decimal(v) * 10**6) for v in values]


@given(st.integers(0, 6), st.lists(st.integers(-10**10, 10**10), min_size=1, max_size=40))
def test_same_decimals_exact(decimals: int, ints: list[int]) -> None:
    # a meter's fixed resolution: the fast path; Wh has three decimals of a kWh
    values = [f"{Decimal(i).scaleb(-decimals):f}" for i in ints]
    got = plain_units(",".join(values), len(values), 6)
    assert got is not None and got.tolist() == [i * 10 ** (6 - decimals) for i in ints]
    if decimals <= 3:
        assert plain_units(",".join(values), len(values), 3).tolist() == \
            [i * 10 ** (3 - decimals) for i in ints]


def test_anything_else_is_left_to_the_row_by_row_path() -> None:
    for text, count in [("1.2.3", 1), ("-", 1), ("", 1), ("abc", 1), ("1,5", 1), ("--1", 1),
                        ("1-2", 1), ("1000.2500004", 1), ("1E+3", 1), (" 8", 1), ("+7", 1),
                        ("1,", 2), (",1", 2), ("5,-", 2), ("1.5,.", 2), ("\u0663", 1),
                        ("1234567890123456789", 1), ("1", 2)]:
        assert plain_units(text, count, 6) is None, text
    assert plain_units("", 0, 6).tolist() == []
    assert plain_units("7.5,1", 2, 3).tolist() == [7500, 1000]  # Wh: micro-kWh
