"""``source.load_readings`` from a real store (SQLite file, PostgreSQL where it runs): awkward
register values take the fast integer path or fall back to Decimal, and either way give
exactly the micro-kWh worked out by hand here (and what Decimal parsing gives)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sitegate.cloud.billing.consumption import Issue
from sitegate.cloud.billing.periods import grid_for, parse_period
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.units import kwh_to_units
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.cloud.store.readings import MARGIN, load_readings
from sitegate.cloud.store.tables import readings

IMP, EXP = "1-0:1.8.0", "1-0:2.8.0"
T0 = datetime(2026, 1, 10, tzinfo=UTC)

# (value text, unit, quality, micro-kWh by hand, or None when the reading must be skipped)
AWKWARD: list[tuple[str, str, str, int | None]] = [
    ("1000.25", "kWh", "good", 1_000_250_000),
    ("1.00025E+3", "kWh", "good", 1_000_250_000),        # exponent
    ("1000.2500004", "kWh", "good", 1_000_250_000),      # 7 decimals: rounds down
    ("1000.2500005", "kWh", "good", 1_000_250_001),      # half rounds up
    ("-0.5", "kWh", "good", -500_000),
    ("-1000.2500005", "kWh", "suspect", -1_000_250_001),  # half away from zero
    (".5", "kWh", "good", 500_000),
    ("5.", "", "good", 5_000_000),                        # no unit: kWh
    ("+7", "kWh", "good", 7_000_000),
    (" 8 ", "kWh", "good", 8_000_000),
    ("1_000", "kWh", "good", 1_000_000_000),             # Decimal takes underscores
    ("\u0663", "kWh", "good", 3_000_000),                # ARABIC-INDIC DIGIT THREE
    ("0001000.000001", "kWh", "good", 1_000_000_001),
    ("1000300", "Wh", "good", 1_000_300_000),
    ("1000300.5", "Wh", "good", 1_000_300_500),
    ("1000300.0005", "Wh", "good", 1_000_300_001),       # 4 decimals of Wh: half up
    ("-2.5", "Wh", "good", -2_500),
    ("999999999999.999999", "kWh", "good", 999_999_999_999_999_999),  # 18 digits
    ("1000.3", "kWh", "invalid", None),                  # marked invalid
    ("abc", "kWh", "good", None),
    ("1.2.3", "kWh", "good", None),
    ("-", "kWh", "good", None),
    ("", "kWh", "good", None),
    ("NaN", "kWh", "good", None),
    ("1e30", "kWh", "good", None),                       # beyond int64 micro-kWh
    ("12", "MWh", "good", None),                         # unsupported unit
]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    url = (str(tmp_path / "cloud.db") if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _row(seq: int, meter: str, qty: str, ts: datetime, value: str, unit: str = "kWh",
         quality: str = "good") -> dict:
    return {"gateway_id": "gw-1", "seq": seq, "meter_id": meter, "ts": ts, "quantity": qty,
            "value": value, "unit": unit, "quality": quality, "flags": "[]",
            "received_at": T0}


def _epoch(ts: datetime) -> int:
    return int(ts.timestamp())


def test_awkward_values_exact(engine: Engine, site: Callable[..., SiteModel]) -> None:
    model = site(meters=[{"id": "m1", "gateway": "gw-1"},
                         {"id": "m2", "gateway": "gw-1", "meter_id": "src-2"}],
                 meter_assignments=[])
    # PostgreSQL keeps values as NUMERIC (ingest_0005): a text it cannot read as a number
    # (a non-ASCII digit, which Python's Decimal takes) is stored as NaN, so skipped.
    awkward = AWKWARD if engine.dialect.name == "sqlite" else [
        (v, u, q, n if v.isascii() else None) for v, u, q, n in AWKWARD]
    grid = grid_for(parse_period("2026-01"), model.tz)
    stamps = [T0 + timedelta(minutes=15 * k) for k in range(len(awkward))]
    rows = [_row(k + 1, "m1", IMP, ts, v, u, q)
            for k, (ts, (v, u, q, _)) in enumerate(zip(stamps, awkward, strict=True))]
    rows.reverse()  # stored out of time order: the load orders them
    seq = len(rows)
    extra = [
        # a second reading at the first instant: ties are ordered by value
        _row(seq + 1, "m1", IMP, stamps[0], "999.5"),
        # export register of m1; m2 stored under its gateway's meter id
        _row(seq + 2, "m1", EXP, stamps[1], "12.125"),
        _row(seq + 3, "src-2", IMP, stamps[2], "7.5", "Wh"),
        # before start - MARGIN: only the nearest one is loaded (the neighbour an estimate
        # across the edge needs, however far away), not the one before it; another
        # gateway's meter is not loaded either
        _row(seq + 4, "m1", IMP, datetime.fromtimestamp(grid.start - MARGIN - 900, UTC), "1"),
        {**_row(seq + 5, "m1", IMP, stamps[3], "1"), "gateway_id": "gw-2"},
        _row(seq + 6, "m1", IMP, datetime.fromtimestamp(grid.start - MARGIN - 1800, UTC),
             "0.5"),
    ]
    with engine.begin() as conn:
        conn.execute(readings.insert(), rows + extra)

    issues: list[Issue] = []
    with engine.connect() as conn:
        loaded = load_readings(conn, model, grid.start, grid.end, issues)

    good = [(_epoch(ts), units) for ts, (_, _, _, units) in zip(stamps, awkward, strict=True)
            if units is not None]
    expected = sorted([*good, (_epoch(stamps[0]), 999_500_000),
                       (grid.start - MARGIN - 900, 1_000_000)])
    assert list(loaded["m1"][IMP]) == expected
    assert list(loaded["m1"][EXP]) == [(_epoch(stamps[1]), 12_125_000)]
    assert list(loaded["m2"][IMP]) == [(_epoch(stamps[2]), 7_500)]
    assert set(loaded) == {"m1", "m2"} and set(loaded["m2"]) == {IMP}

    # the same as parsing every value with Decimal, as the load always did
    for (value, unit, _, units) in awkward:
        if units is not None:
            assert kwh_to_units(Decimal(value), unit) == units, value

    skipped = [(_epoch(ts), v) for ts, (v, _, _, units) in zip(stamps, awkward, strict=True)
               if units is None]
    assert sorted((i.ts, i.meter, i.kind) for i in issues) == sorted(
        (ts, "m1", "skipped_reading") for ts, _ in skipped)
    detail = {i.ts: i.detail for i in issues}
    by_value = dict((v, ts) for ts, v in skipped)
    assert detail[by_value["1000.3"]] == "reading marked invalid"
    assert "MWh" in detail[by_value["12"]]
    assert "out of range" in detail[by_value["1e30"]]


def test_each_value_alone_in_its_register_exact(engine: Engine,
                                                site: Callable[..., SiteModel]) -> None:
    # Each awkward value the only reading of its own meter: the plain decimals are turned
    # into micro-kWh by the store itself (the load's fast path), the others row by row;
    # both give the micro-kWh worked out by hand above, and the same skipped readings.
    awkward = AWKWARD if engine.dialect.name == "sqlite" else [  # as in the test above
        (v, u, q, n if v.isascii() else None) for v, u, q, n in AWKWARD]
    meters = [f"v{k:02d}" for k in range(len(awkward))]
    model = site(meters=[{"id": m, "gateway": "gw-1"} for m in meters], meter_assignments=[])
    grid = grid_for(parse_period("2026-01"), model.tz)
    rows = [_row(k + 1, m, IMP, T0 + timedelta(minutes=15 * k), v, u, q)
            for k, (m, (v, u, q, _)) in enumerate(zip(meters, awkward, strict=True))]
    with engine.begin() as conn:
        conn.execute(readings.insert(), rows)
    issues: list[Issue] = []
    with engine.connect() as conn:
        loaded = load_readings(conn, model, grid.start, grid.end, issues)
    for k, (m, (value, _, _, units)) in enumerate(zip(meters, awkward, strict=True)):
        ts = _epoch(T0 + timedelta(minutes=15 * k))
        if units is None:
            assert m not in loaded, value
        else:
            assert list(loaded[m][IMP]) == [(ts, units)], value
    assert sorted(i.meter for i in issues) == sorted(
        m for m, (_, _, _, units) in zip(meters, awkward, strict=True) if units is None)


def test_quarter_hour_registers_and_far_neighbours(engine: Engine,
                                                   site: Callable[..., SiteModel]) -> None:
    # q1: a reading every quarter hour from an hour before the window to an hour after it
    # (the window is [start - MARGIN, end + MARGIN]): exactly the window's readings, its
    # edges included. q2: the same inside the window but its edge readings missing, and
    # one reading a week beyond each edge: those two nearest neighbours come with it.
    model = site(meters=[{"id": "q1", "gateway": "gw-1"}, {"id": "q2", "gateway": "gw-1"}],
                 meter_assignments=[])
    grid = grid_for(parse_period("2026-01"), model.tz)
    lo, hi = grid.start - MARGIN, grid.end + MARGIN
    stamps = range(lo - 3600, hi + 3600 + 1, 900)
    rows = [_row(k + 1, "q1", IMP, datetime.fromtimestamp(t, UTC), f"{k}.25")
            for k, t in enumerate(stamps)]
    inner = [t for t in stamps if lo < t < hi]
    far = [lo - 7 * 86400, hi + 7 * 86400]
    rows += [_row(len(rows) + k + 1, "q2", IMP, datetime.fromtimestamp(t, UTC), f"{k}.5", "Wh")
             for k, t in enumerate(sorted(inner + far))]
    with engine.begin() as conn:
        conn.execute(readings.insert(), rows)
    with engine.connect() as conn:
        loaded = load_readings(conn, model, grid.start, grid.end)
    assert list(loaded["q1"][IMP]) == [(t, k * 10**6 + 250_000) for k, t in enumerate(stamps)
                                       if lo <= t <= hi]
    assert list(loaded["q2"][IMP]) == [(t, k * 1000 + 500)
                                       for k, t in enumerate(sorted(inner + far))]


def test_empty_store_loads_nothing(engine: Engine, site: Callable[..., SiteModel]) -> None:
    model = site()
    grid = grid_for(parse_period("2026-01"), model.tz)
    issues: list[Issue] = []
    with engine.connect() as conn:
        assert load_readings(conn, model, grid.start, grid.end, issues) == {}
    assert issues == []
