"""Bad input gets a clear error naming the line or key, and loses nothing: a bulk list
with bad rows stores none of them; a bad units file or reservation list changes nothing."""

from __future__ import annotations

from datetime import date

import pytest

from sitegate.cloud.billing.sitemodel import SiteModelError
from sitegate.cloud.stays import ops
from sitegate.cloud.stays.readings import MAX_BYTES, MAX_ROWS, BulkError


def _bulk(engine, text: str, day=date(2026, 7, 14), unit_type="chalet"):
    return ops.enter_readings(engine, None, "list.csv", text.encode(), "Hauswart", unit_type,
                              day)


def test_bad_bulk_list_names_every_line_and_stores_nothing(camp, enter) -> None:
    enter(camp, "readings-2026-07-01.csv", date(2026, 7, 1))
    before = ops.unit_readings(camp, None, None)
    text = ("unit,meter,value\n"
            "C1,power,900\n"  # line 2: below 1000.0 of 1 July
            "C2,power,9000\n"  # line 3: 6999.5 kWh in 13 days, limit 100 kWh a day
            "C3,gas,1\n"  # line 4: no such meter
            "X9,power,1\n"  # line 5: no such unit
            "P1,power,1\n"  # line 6: a pitch, not a chalet
            "C1,water,abc\n"  # line 7: not a number
            "C3,power,510\n"  # line 8: fine
            "C3,power,511\n")  # line 9: the same meter twice
    with pytest.raises(BulkError) as exc:
        _bulk(camp, text)
    got = exc.value.problems
    assert [p.split(":")[0] for p in got] == [
        "line 4", "line 5", "line 6", "line 7", "line 9"]  # parse problems first, all
    assert "unit C3 has no meter 'gas' (it has power, water)" in got[0]
    assert "unknown unit 'X9'" in got[1] and "is a pitch, not a chalet" in got[2]
    # the list without its unreadable lines: the plausibility problems, all of them
    text = "unit,meter,value\nC1,power,900\nC2,power,9000\nC3,power,510\n"
    with pytest.raises(BulkError) as exc:
        _bulk(camp, text)
    assert len(exc.value.problems) == 2
    assert exc.value.problems[0].startswith("line 2: C1 power: 900 kWh is below the last "
                                            "value 1000.0 of 2026-07-01")
    assert exc.value.problems[1].startswith("line 3: C2 power: 6999.5 kWh since 2026-07-01 "
                                            "is more than 100 kWh a day")
    assert ops.unit_readings(camp, None, None) == before  # nothing stored


def test_bulk_bounds(camp) -> None:
    with pytest.raises(BulkError, match="more than"):
        ops.enter_readings(camp, None, "big.csv", b"x" * (MAX_BYTES + 1), "a", None, None)
    rows = "unit,meter,value\n" + "C1,power,1\n" * (MAX_ROWS + 1)
    with pytest.raises(BulkError, match=f"more than {MAX_ROWS} rows"):
        _bulk(camp, rows)
    with pytest.raises(BulkError, match="header lacks value"):
        _bulk(camp, "unit,meter\nC1,power\n")
    with pytest.raises(BulkError, match="not JSON"):
        ops.enter_readings(camp, None, "x.json", b"[{", "a", None, None)
    with pytest.raises(BulkError, match="not UTF-8"):
        ops.enter_readings(camp, None, "x.csv", b"\xff\xfe\x00", "a", None, None)


def test_reading_before_a_later_one_must_not_exceed_it(camp, enter) -> None:
    enter(camp, "readings-2026-07-14.csv", date(2026, 7, 14))
    with pytest.raises(BulkError, match="above the later value 1123.4 of 2026-07-14"):
        _bulk(camp, "unit,meter,value\nC1,power,1200\n", day=date(2026, 7, 1))


def test_bad_units_file_names_keys_and_keeps_the_old_setup(camp) -> None:
    old = ops.setup(camp, None)
    bad = {**old, "units": [*old["units"],
                            {"id": "C9", "type": "igloo", "name": "x",
                             "meters": [{"id": "power", "utility": "electricity",
                                         "rate": "water"}]}],
           "rates": [*old["rates"], {"id": "heat", "utility": "steam", "price": "1"}]}
    with pytest.raises(SiteModelError) as exc:
        ops.import_units(camp, None, bad)
    assert "rates[3].utility: Input should be 'electricity', 'gas' or 'water'" in \
        exc.value.errors
    bad["rates"] = old["rates"]
    with pytest.raises(SiteModelError) as exc:
        ops.import_units(camp, None, bad)
    assert exc.value.errors == [
        "units[6].type: unknown unit type 'igloo'",
        "units[6].meters[0].rate: rate 'water' is for water, the meter measures electricity"]
    assert ops.setup(camp, None) == old


def test_bad_reservations_name_their_index_and_change_nothing(camp) -> None:
    before = ops.reservations(camp, None)
    items = [
        {"id": "S9", "parent": "Y-C1", "from": "2026-07-10", "to": "2026-07-20"},  # overlaps S1
        {"id": "S8", "parent": "nope", "from": "2026-07-10", "to": "2026-07-20"},
        {"id": "Y-Z", "unit": "Z1", "category": "vip", "from": "2026-01-01",
         "to": "2026-12-31", "guest": {"name": "x"}},
        {"id": "S7", "parent": "Y-C2", "from": "2026-12-20", "to": "2027-01-03"},
        {"id": "S6", "parent": "Y-C2", "from": "2026-08-01", "to": "2026-08-02",
         "deposit": "-5"},
    ]
    with pytest.raises(SiteModelError) as exc:
        ops.import_reservations(camp, None, items)
    assert exc.value.errors == [
        "reservations[4].deposit: Input should be greater than or equal to 0"]
    with pytest.raises(SiteModelError) as exc:
        ops.import_reservations(camp, None, items[:4])
    assert exc.value.errors == [
        "reservations[1].parent: no parent reservation 'nope'",
        "reservations[2].unit: unknown unit 'Z1'",
        "reservations[2].category: unknown category 'vip'",
        "reservations[3]: 2026-12-20..2027-01-03 is not inside the parent reservation Y-C2 "
        "(2026-01-01..2026-12-31)",
        "reservations[0]: 2026-07-10..2026-07-20 overlaps reservation S1 "
        "(2026-07-01..2026-07-14)"]
    assert ops.reservations(camp, None) == before


def test_settled_reservation_is_not_changed_by_import(read_camp) -> None:
    ops.checkout(read_camp, None, "S1", date(2026, 7, 14))
    with pytest.raises(SiteModelError, match="S1 is settled in invoice 1"):
        ops.import_reservations(read_camp, None, [
            {"id": "S1", "parent": "Y-C1", "from": "2026-07-01", "to": "2026-07-15"}])
    with pytest.raises(ops.StayError, match="checked_out: it cannot become checked_in"):
        ops.set_status(read_camp, None, "S1", "checked_in")
