"""Shared builders for billing tests: a small site model and cumulative register data."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitegate.cloud.billing.billing_run import bill
from sitegate.cloud.billing.periods import STEP, grid_for, parse_period
from sitegate.cloud.billing.sitemodel import SiteModel, parse_site
from sitegate.cloud.billing.sites import save_site
from sitegate.cloud.billing.units import kwh_to_units

sys.path.insert(0, str(Path(__file__).parent))  # qrpage, shared by the PDF tests

BASE: dict[str, Any] = {
    "site": {
        "id": "lindenweg", "name": "Lindenweg 12", "timezone": "Europe/Zurich",
        "gateways": ["gw-1"], "qr_reference_prefix": "42",
        "creditor": {"name": "Hausverwaltung Linden AG", "street": "Bahnhofstrasse",
                     "house_num": "1", "pcode": "8000", "city": "Zürich", "country": "CH",
                     "iban": "CH44 3199 9123 0008 8901 2"},
        "reminders": {"fees": ["0.00", "20.00", "30.00"], "days": 10},
    },
    "buildings": [{"id": "b1", "name": "Haus A"}],
    "meters": [{"id": "m1", "gateway": "gw-1"}],
    "billing_points": [{"id": "apt-1", "building": "b1", "name": "Wohnung 1",
                        "tariff": "res", "owner": "owner", "area_m2": "84.5"}],
    "meter_assignments": [{"billing_point": "apt-1", "meter": "m1", "from": "2025-01-01"}],
    "accounts": [
        {"id": "owner", "name": "Eigentümer AG", "kind": "owner"},
        {"id": "anna", "name": "Anna Muster", "email": "anna@example.ch", "delivery": "email",
         "address": {"street": "Lindenweg", "house_num": "12", "pcode": "8001",
                     "city": "Zürich"}},
        {"id": "ben", "name": "Ben Beispiel",
         "address": {"street": "Lindenweg", "house_num": "12", "pcode": "8001",
                     "city": "Zürich"}},
    ],
    "occupancy": [{"billing_point": "apt-1", "account": "anna", "from": "2024-06-01"}],
    "tariffs": [{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
        {"key": "energy", "label": "Strom", "price": "0.30", "vat": "8.1"}]}]}],
}


@pytest.fixture
def site() -> Callable[..., SiteModel]:
    """site(**sections) -> a validated model: BASE with the given top-level sections
    replaced, and ``site_extra`` merged into the ``site`` table."""

    def build(site_extra: dict | None = None, **sections: Any) -> SiteModel:
        data = copy.deepcopy(BASE)
        data.update(copy.deepcopy(sections))
        data["site"].update(site_extra or {})
        return parse_site(data)

    return build


@pytest.fixture
def register() -> Callable[..., list[tuple[int, int]]]:
    """register(period, per_interval, start=0, end=None) -> readings at every boundary of the
    period's grid: a cumulative register growing by per_interval(i) kWh in interval i."""

    def build(period: str, per_interval: Callable[[int], Decimal], start: Decimal = Decimal(0),
              tz: Any = None) -> list[tuple[int, int]]:
        from zoneinfo import ZoneInfo

        g = grid_for(parse_period(period), tz or ZoneInfo("Europe/Zurich"))
        value = start
        out = [(g.start, kwh_to_units(value))]
        for i in range(g.n):
            value += per_interval(i)
            out.append((g.start + (i + 1) * STEP, kwh_to_units(value)))
        return out

    return build


@pytest.fixture
def db(tmp_path):
    """A migrated SQLite cloud database (every branch: ingest and billing)."""
    from sitegate.cloud.store.db import make_engine, upgrade

    url = str(tmp_path / "cloud.db")
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def insert_readings(conn, gateway: str, meter: str, rows, quantity: str = "1-0:1.8.0",
                    received_at=None, seq0: int = 1) -> int:
    """Rows of (epoch s, micro-kWh) into the ingest table as kWh strings; returns next seq."""
    from datetime import UTC, datetime

    from sitegate.cloud.billing.units import units_to_kwh
    from sitegate.cloud.store.tables import readings

    recv = received_at or datetime(2026, 2, 1, tzinfo=UTC)
    conn.execute(readings.insert(), [
        {"gateway_id": gateway, "seq": seq0 + k, "meter_id": meter,
         "ts": datetime.fromtimestamp(t, UTC), "quantity": quantity,
         "value": str(units_to_kwh(v)), "unit": "kWh", "quality": "good", "flags": "[]",
         "received_at": recv} for k, (t, v) in enumerate(rows)])
    return seq0 + len(rows)


@pytest.fixture
def put_readings():
    return insert_readings


# The move case of test_acceptance, in the store (lifecycle and credit-note tests).
MOVE = [{"billing_point": "apt-1", "account": "anna", "from": "2024-06-01", "to": "2026-01-16"},
        {"billing_point": "apt-1", "account": "ben", "from": "2026-01-16"}]
TARIFF = [{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
    {"key": "energy", "label": "Strom", "price": "0.30"}],
    "fees": [{"key": "meter", "label": "Messgebühr", "monthly": "6.20"}]}]}]


@pytest.fixture
def billed(db, site, register, put_readings):
    """The move case of test_acceptance in the store: Anna 120.00 (no. 1), Ben 128.00 (no. 2)."""
    model = site(occupancy=MOVE, tariffs=TARIFF)
    with db.begin() as conn:
        save_site(conn, model)
        put_readings(conn, "gw-1", "m1", register("2026-01", lambda i: Decimal("0.25")))
        result = bill(conn, model, "2026-01")
    return db, model, result
