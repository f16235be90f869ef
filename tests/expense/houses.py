"""Shared builders of the expense tests: a small German house (Europe/Berlin, EUR) as a site
model, an accounting period over it, and register readings at local midnights."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
GW = "gw-haus"


def account(aid: str, name: str, kind: str = "consumer") -> dict[str, Any]:
    return {"id": aid, "name": name, "kind": kind,
            "address": {"street": "Gartenstraße", "house_num": "5", "pcode": "10115",
                        "city": "Berlin", "country": "DE"}}


SITE: dict[str, Any] = {
    "site": {"id": "garten5", "name": "Gartenstraße 5", "timezone": "Europe/Berlin",
             "currency": "EUR", "cash_unit": "0.01", "gateways": [GW],
             "creditor": {"name": "Hausverwaltung Garten GmbH", "street": "Torstraße",
                          "house_num": "1", "pcode": "10119", "city": "Berlin",
                          "country": "CH", "iban": "CH44 3199 9123 0008 8901 2"}},
    "buildings": [{"id": "h", "name": "Vorderhaus"}],
    "billing_points": [
        {"id": "A", "building": "h", "name": "Wohnung A", "area_m2": "60", "tariff": "t",
         "owner": "owner"},
        {"id": "B", "building": "h", "name": "Wohnung B", "area_m2": "90", "tariff": "t",
         "owner": "owner"},
        {"id": "C", "building": "h", "name": "Wohnung C", "area_m2": "50", "tariff": "t",
         "owner": "owner"}],
    "accounts": [account("owner", "Erbengemeinschaft Garten", "owner"),
                 account("anna", "Anna Albrecht"), account("ben", "Ben Brandt"),
                 account("carla", "Carla Conrad"), account("dora", "Dora Dietz")],
    "occupancy": [{"billing_point": "A", "account": "anna", "from": "2020-01-01"},
                  {"billing_point": "B", "account": "ben", "from": "2020-01-01"},
                  {"billing_point": "C", "account": "carla", "from": "2020-01-01"}],
    "tariffs": [{"id": "t", "versions": [{"valid_from": "2020-01-01", "components": [
        {"key": "energy", "label": "Strom", "price": "0.30"}]}]}],
}


def heat_meters(*bps: str, medium: str = "heat", prefix: str = "heat") -> dict[str, list]:
    """Site-model meters for the billing points (``heat-A``: M-Bus quantities as the
    gateway sends them: heat_energy kWh, volume m³) and their assignments."""
    qty = "heat_energy" if medium == "heat" else "volume"
    return {"meters": [{"id": f"{prefix}-{bp}", "gateway": GW, "medium": medium,
                        "import_quantity": qty} for bp in bps],
            "meter_assignments": [{"billing_point": bp, "meter": f"{prefix}-{bp}",
                                   "from": "2020-01-01"} for bp in bps]}


def ts(d: date | datetime) -> int:
    if isinstance(d, datetime):
        return int(d.replace(tzinfo=BERLIN).timestamp())
    return int(datetime(d.year, d.month, d.day, tzinfo=BERLIN).timestamp())


def regs(**meters: dict[date, str]) -> dict[str, list[tuple[int, Decimal]]]:
    """meter=({date: value}) -> readings at those local midnights."""
    return {m.replace("_", "-"): sorted((ts(d), Decimal(v)) for d, v in vals.items())
            for m, vals in meters.items()}


def merged(*parts: dict[str, list]) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in parts:
        for k, v in p.items():
            out.setdefault(k, []).extend(v)
    return out


def ingest(engine, gateway: str, rows: list[tuple[str, str, date | datetime, str, str]],
           seq0: int = 1) -> int:
    """Readings as the gateway sends them: (meter, quantity, local date/time, value, unit)
    -> one batch through the cloud's ingest writer (the MQTT handler's own code path)."""
    from datetime import UTC

    from sitegate.cloud.ingest.writer import Writer
    from sitegate.gateway.buffer import reading_json
    from sitegate.sync import protocol as p

    texts = [reading_json(p.Reading(m, datetime.fromtimestamp(ts(when), UTC), q, Decimal(v),
                                    unit)) for m, q, when, v, unit in rows]
    acks = Writer(engine).handle(p.topic(gateway, "readings"),
                                 p.encode_batch("readings", seq0, texts))
    assert acks, "the batch was not acknowledged"
    return seq0 + len(rows)


# The combined-boiler period of test_allocation_rules as a file (units A and B).
COMBINED_PERIOD = """
hot_water_meters = ["ww-A", "ww-B"]
[period]
id = "2025"
from = 2025-01-01
to = 2026-01-01
[[units]]
billing_point = "A"
[[units]]
billing_point = "B"
[[categories]]
id = "heizung"
label = "Heizung"
kind = "heating"
key = "heat"
consumption_share = "50"
base_key = "area"
combined_with = "warmwasser"
[[categories]]
id = "warmwasser"
label = "Warmwasser"
kind = "hot_water"
key = "hot_water"
consumption_share = "70"
base_key = "area"
"""
