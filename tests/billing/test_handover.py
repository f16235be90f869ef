"""A move at a time of day (Zwischenablesung): consumption is split at the 15-min boundary
nearest the handover, at the handover reading noted by hand, else the meter's reading on
(or near) that boundary, else an interpolated value flagged as estimated.

Every case: one flat, meter m1 at 1000.000 kWh on 1 Jan 00:00, 0.25 kWh every 15 min
(744 kWh in January, 1744.000 on 1 Feb). Anna moves out and Ben moves in on Friday
16 January at 10:20; the nearest boundary is 10:15 (09:15 UTC), 15 days + 41 quarter
hours = 1481 intervals after the start: the meter reads 1000 + 1481 x 0.25 = 1370.250
there (10:00: 1370.000, 10:30: 1370.500). Energy 0.30/kWh, metering fee 6.20/month
prorated by days (the move day is Ben's: Anna 15/31 = 3.00, Ben 16/31 = 3.20), VAT 8.1 %
on the net, total rounded to 0.05.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from sitegate.cloud.billing.compute import IMPORT, bill_site
from sitegate.cloud.billing.explain import explain, explain_text
from sitegate.cloud.billing.periods import parse_period
from sitegate.cloud.billing.sitemodel import SiteModelError, parse_site, site_to_json
from sitegate.cloud.billing.units import kwh_to_units as U

JAN = parse_period("2026-01")
ZH = ZoneInfo("Europe/Zurich")
SPLIT = int(datetime(2026, 1, 16, 10, 15, tzinfo=ZH).timestamp())
TARIFF = [{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
    {"key": "energy", "label": "Strom", "price": "0.30"}],
    "fees": [{"key": "meter", "label": "Messgebühr", "monthly": "6.20"}]}]}]


def move(out_reading: str | None = None, in_reading: str | None = None) -> list[dict]:
    anna = {"billing_point": "apt-1", "account": "anna", "from": "2024-06-01",
            "to": datetime(2026, 1, 16, 10, 20)}
    ben = {"billing_point": "apt-1", "account": "ben", "from": datetime(2026, 1, 16, 10, 20)}
    if out_reading:
        anna["end_reading"] = out_reading
    if in_reading:
        ben["start_reading"] = in_reading
    return [anna, ben]


def lines(doc: dict) -> list[tuple[str, str, str, str, str]]:
    return [(ln["key"], ln["from"], ln["to"], ln["quantity"], ln["amount"])
            for ln in doc["lines"]]


def totals(doc: dict) -> tuple[str, str, str, str]:
    return doc["net_total"], doc["vat_total"], doc["rounding"], doc["total_due"]


@pytest.fixture
def meter(register):
    return register("2026-01", lambda i: D("0.25"), start=D("1000"))


def test_handover_reading_splits_the_move_day(site, meter) -> None:
    # The manager noted 1370.400 at 10:20; it takes precedence over the meter's 1370.250
    # at 10:15 and fits its readings around (1370.000 at 10:00, 1370.500 at 10:30).
    # Anna: 1370.400 - 1000 = 370.400 kWh x 0.30 = 111.12; fee 3.00; net 114.12;
    #       VAT 9.24372 -> 9.24; 123.36 -> 123.35 (rounding -0.01)
    # Ben:  1744 - 1370.400 = 373.600 kWh x 0.30 = 112.08; fee 3.20; net 115.28;
    #       VAT 9.33768 -> 9.34; 124.62 -> 124.60 (rounding -0.02)
    model = site(occupancy=move(out_reading="1370.400"), tariffs=TARIFF)
    run = bill_site(model, JAN, {"m1": {IMPORT: meter}})
    anna, ben = run.documents["anna"], run.documents["ben"]
    assert lines(anna) == [("energy", "2026-01-01", "2026-01-16T10:15", "370.400", "111.12"),
                           ("meter", "2026-01-01", "2026-01-16", "15/31", "3.00")]
    assert totals(anna) == ("114.12", "9.24", "-0.01", "123.35")
    assert lines(ben) == [("energy", "2026-01-16T10:15", "2026-02-01", "373.600", "112.08"),
                          ("meter", "2026-01-16", "2026-02-01", "16/31", "3.20")]
    assert totals(ben) == ("115.28", "9.34", "-0.02", "124.60")
    out, inn = anna["sources"][0]["move_out"], ben["sources"][0]["move_in"]
    assert out == inn == {"at": "2026-01-16T09:15:00Z", "noted": "2026-01-16T10:20:00",
                          "meter": "m1", "method": "handover", "estimated": False,
                          "reading": "1370.400"}
    assert anna["sources"][0]["estimated"] == ben["sources"][0]["estimated"] == 0
    assert "owner" not in run.documents  # no vacant quarter hour in between

    text = explain_text(explain({"number": 1, "state": "draft", "account": "anna",
                                 "period": "2026-01", "document": anna}))
    assert ("billing point apt-1: 1481 intervals 2025-12-31T23:00:00Z .. "
            "2026-01-16T09:15:00Z, 0 estimated, 0 missing") in text
    assert ("move-out noted 2026-01-16T10:20:00, split at 2026-01-16T09:15:00Z: handover "
            "reading noted by hand 1370.400 kWh, meter m1") in text
    assert "  net 114.12  VAT 9.24  advances 0.00  rounding -0.01  due 123.35" in text


def test_handover_reading_anchors_a_day_without_readings(site, meter) -> None:
    # The gateway was offline all of 16 January: no reading after 00:00 (1360.000) until
    # 24:00 (1384.000). The handover reading
    # 1370.400 fixes the split: the same 370.400 / 373.600 kWh as above, every interval of
    # the gap on either side estimated: 41 before 10:15 for Anna, 55 after it for Ben.
    day = int(datetime(2026, 1, 16, tzinfo=ZH).timestamp())
    rows = [(t, v) for t, v in meter if not day < t < day + 86400]
    model = site(occupancy=move(in_reading="1370.400"), tariffs=TARIFF)
    run = bill_site(model, JAN, {"m1": {IMPORT: rows}})
    anna, ben = run.documents["anna"], run.documents["ben"]
    assert lines(anna)[0][3:] == ("370.400", "111.12") and totals(anna)[3] == "123.35"
    assert lines(ben)[0][3:] == ("373.600", "112.08") and totals(ben)[3] == "124.60"
    assert anna["sources"][0]["estimated"] == 41 and ben["sources"][0]["estimated"] == 55
    assert ben["sources"][0]["move_in"]["method"] == "handover"


def test_nearest_recorded_reading_stands_in_for_a_lost_one(site, meter) -> None:
    # The 10:15 reading is lost; a reading made on demand at 10:19 (1370.300) is within
    # the tolerance (7 min): it is taken as the split value, recorded, not estimated.
    # Anna: 370.300 x 0.30 = 111.09; fee 3.00; net 114.09; VAT 9.24129 -> 9.24;
    #       123.33 -> 123.35 (+0.02)
    # Ben:  373.700 x 0.30 = 112.11; fee 3.20; net 115.31; VAT 9.34011 -> 9.34;
    #       124.65 (rounding 0.00)
    rows = [r for r in meter if r[0] != SPLIT] + [(SPLIT + 240, U(D("1370.300")))]
    model = site(occupancy=move(), tariffs=TARIFF)
    run = bill_site(model, JAN, {"m1": {IMPORT: rows}})
    anna, ben = run.documents["anna"], run.documents["ben"]
    assert lines(anna)[0][3:] == ("370.300", "111.09")
    assert totals(anna) == ("114.09", "9.24", "0.02", "123.35")
    assert lines(ben)[0][3:] == ("373.700", "112.11")
    assert totals(ben) == ("115.31", "9.34", "0.00", "124.65")
    sp = anna["sources"][0]["move_out"]
    assert (sp["method"], sp["reading"], sp["reading_at"], sp["estimated"]) == \
        ("nearest", "1370.300", "2026-01-16T09:19:00Z", False)
    assert anna["sources"][0]["estimated"] == ben["sources"][0]["estimated"] == 0
    # Out of tolerance (a 3-minute one): interpolated instead, 10:00 .. 10:30, below.
    far = site(occupancy=move(), tariffs=TARIFF, site_extra={"handover_tolerance_minutes": 3})
    sp = bill_site(far, JAN, {"m1": {IMPORT: rows}}).documents["anna"]["sources"][0]
    assert sp["move_out"]["method"] == "interpolated"


def test_interpolated_split_is_flagged_estimated(site, meter) -> None:
    # No reading within 7 min of 10:15: interpolated between 10:00 (1370.000) and 10:30
    # (1370.500): 1370.250, flagged; one estimated interval on each side.
    # Anna: 370.250 x 0.30 = 111.075 -> 111.08; fee 3.00; net 114.08; VAT 9.24048 -> 9.24;
    #       123.32 -> 123.30 (-0.02)
    # Ben:  373.750 x 0.30 = 112.125 -> 112.13; fee 3.20; net 115.33; VAT 9.34173 -> 9.34;
    #       124.67 -> 124.65 (-0.02)
    rows = [r for r in meter if r[0] != SPLIT]
    model = site(occupancy=move(), tariffs=TARIFF)
    run = bill_site(model, JAN, {"m1": {IMPORT: rows}})
    anna, ben = run.documents["anna"], run.documents["ben"]
    assert lines(anna)[0][3:] == ("370.250", "111.08")
    assert totals(anna) == ("114.08", "9.24", "-0.02", "123.30")
    assert lines(ben)[0][3:] == ("373.750", "112.13")
    assert totals(ben) == ("115.33", "9.34", "-0.02", "124.65")
    sp = ben["sources"][0]["move_in"]
    assert (sp["method"], sp["reading"], sp["estimated"]) == ("interpolated", "1370.250", True)
    assert anna["sources"][0]["estimated"] == ben["sources"][0]["estimated"] == 1
    text = explain_text(explain({"number": 2, "state": "draft", "account": "ben",
                                 "period": "2026-01", "document": ben}))
    assert ("move-in noted 2026-01-16T10:20:00, split at 2026-01-16T09:15:00Z: interpolated "
            "between the meter's readings, ESTIMATED 1370.250 kWh, meter m1") in text


def test_implausible_handover_reading_is_reported_and_not_used(site, meter) -> None:
    # A typo (13704.00 for 1370.400) is above the meter's 1370.500 at 10:30: reported,
    # and the meter's own 1370.250 at 10:15 splits: Anna 370.250 kWh -> 111.08, due 123.30.
    model = site(occupancy=move(out_reading="13704.00"), tariffs=TARIFF)
    run = bill_site(model, JAN, {"m1": {IMPORT: meter}})
    anna = run.documents["anna"]
    assert lines(anna)[0][3:] == ("370.250", "111.08") and totals(anna)[3] == "123.30"
    sp = anna["sources"][0]["move_out"]
    assert (sp["method"], sp["reading"]) == ("recorded", "1370.250")
    why = ("handover reading 13704.000 kWh is above the meter's 1370.500 kWh at "
           "2026-01-16T09:30:00Z: not used")
    assert sp["rejected"] == why
    assert [(i.kind, i.detail) for i in run.issues if i.kind == "handover_reading"] == \
        [("handover_reading", why)]


def test_date_only_move_keeps_midnight_and_vacancy_between_goes_to_the_owner(site,
                                                                            meter) -> None:
    # Anna leaves on 16 Jan at 08:00, Ben comes on 17 Jan at 14:00 (date-times, no
    # readings): the owner has 16 Jan 08:00 .. 17 Jan 14:00 = 30 h = 120 intervals x 0.25 =
    # 30.000 kWh x 0.30 = 9.00, and the fee for 16 Jan (1/31: 6.20 / 31 = 0.20).
    # Anna: 15 days + 8 h = 1472 intervals = 368.000 kWh -> 110.40; fee 15/31 = 3.00.
    # Ben: 744 - 368 - 30 = 346.000 kWh -> 103.80; fee 15/31 = 3.00.
    occ = [{"billing_point": "apt-1", "account": "anna", "from": "2024-06-01",
            "to": datetime(2026, 1, 16, 8)},
           {"billing_point": "apt-1", "account": "ben", "from": datetime(2026, 1, 17, 14)}]
    run = bill_site(site(occupancy=occ, tariffs=TARIFF), JAN, {"m1": {IMPORT: meter}})
    docs = run.documents
    assert [ln[3:] for ln in lines(docs["anna"])] == [("368.000", "110.40"), ("15/31", "3.00")]
    assert lines(docs["owner"]) == [
        ("energy", "2026-01-16T08:00", "2026-01-17T14:00", "30.000", "9.00"),
        ("meter", "2026-01-16", "2026-01-17", "1/31", "0.20")]
    assert [ln[3:] for ln in lines(docs["ben"])] == [("346.000", "103.80"), ("15/31", "3.00")]
    assert docs["owner"]["sources"][0]["move_in"]["method"] == "recorded"


def test_site_file_handover_errors_name_the_key(site) -> None:
    def errors(occ: list[dict]) -> list[str]:
        with pytest.raises(SiteModelError) as exc:
            site(occupancy=occ)
        return exc.value.errors

    base = move()
    assert errors([base[0], {**base[1], "from": datetime(2026, 1, 16, 10, 10)}]) == \
        ["occupancy[1].from: apt-1 already occupied by anna on 2026-01-16 10:10:00"]
    assert errors([{**base[0], "end_reading": "1370.4"},
                   {**base[1], "start_reading": "1370.5"}]) == \
        ["occupancy[1].start_reading: 1370.5 differs from the move-out reading 1370.4 of "
         "occupancy[0]"]
    assert errors([{**base[0], "end_reading": "-1"}, base[1]]) == \
        ["occupancy[0].end_reading: Input should be greater than or equal to 0"]
    assert errors([{"billing_point": "apt-1", "account": "anna", "from": "2020-01-01",
                    "to": "2021-01-01", "start_reading": "5"}]) == \
        ["occupancy[0].start_reading: apt-1 has no meter at 2020-01-01 00:00:00"]
    assert errors([{"billing_point": "apt-1", "account": "anna", "from": "2025-01-01",
                    "end_reading": "5"}]) == \
        ["occupancy[0].end_reading: a move-out reading needs a 'to'"]


def test_handover_round_trips_through_the_stored_json(site) -> None:
    model = site(occupancy=move(out_reading="1370.400"), tariffs=TARIFF)
    again = parse_site(site_to_json(model))
    assert again == model
    assert site_to_json(model)["occupancy"][0]["to"] == "2026-01-16T10:20:00"
