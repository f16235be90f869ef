"""The site model: what is billed, to whom, at which price. Imported from a TOML file.

Every error names the key it is about (``occupancy[2].account: unknown account 'x'``).
Dates are local dates of the site; an ``end``/``to`` date is exclusive: a move on 15 March
is ``to = 2026-03-15`` for the old tenant and ``from = 2026-03-15`` for the new one.

A move (an occupancy's ``from`` / ``to``) may carry the time of the handover, as a local
date-time (``to = 2026-03-15T10:20:00``), and the meter reading the property manager noted
then (``end_reading`` / ``start_reading``, kWh: the Zwischenablesung). Energy is split at
the 15-min boundary nearest that time (a date alone: its midnight); the register value
there is, in this order: the handover reading, a recorded reading at the boundary, the
recorded reading nearest to it within ``site.handover_tolerance_minutes``, or the value
interpolated between the readings around it (flagged as estimated). Fixed monthly fees are
prorated by whole days: the move day is the incoming occupant's.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SiteModelError(ValueError):
    """The site file is invalid; ``errors`` are ``key.path: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid site model:\n  " + "\n  ".join(errors))
        self.errors = errors


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_M):
    street: str = ""
    house_num: str = ""
    pcode: str
    city: str
    country: str = "CH"


class Creditor(Address):
    name: str
    iban: str


class Reminders(_M):
    fees: list[Decimal] = [Decimal("0"), Decimal("20.00"), Decimal("30.00")]
    days: int = 10  # new due date = reminder date + days


class Site(_M):
    id: str
    name: str
    timezone: str = "Europe/Zurich"
    currency: Literal["CHF", "EUR"] = "CHF"
    cash_unit: Decimal = Decimal("0.05")
    billing_period: Literal["monthly", "quarterly", "yearly"] = "monthly"
    payment_days: int = 30
    gateways: list[str] = []
    grid_meter: str | None = None
    pv_meters: list[str] = []
    battery_meter: str | None = None
    qr_reference_prefix: str = Field(default="0", pattern=r"^\d{1,8}$")
    creditor: Creditor
    reminders: Reminders = Reminders()
    # the invoices' language (their fixed words; line labels are the site file's own)
    language: Literal["de", "en"] = "de"
    labels: dict[str, str] = {}
    # how far from a move's split boundary a recorded reading may be to stand in for it
    handover_tolerance_minutes: int = Field(default=7, ge=0, le=60)
    # the highest price per kWh solar may be billed at (in Switzerland: the utility's
    # standard product for a self-consumption community); None: no cap
    solar_reference_price: Decimal | None = Field(default=None, ge=0)
    # a session of a calibrated charger whose signed values fail, are missing or disagree
    # with the unsigned ones: held back from billing (listed as an issue), or billed from
    # the unsigned values with a note on the invoice
    unsigned_sessions: Literal["hold", "bill_with_note"] = "hold"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class Building(_M):
    id: str
    name: str
    address: Address | None = None


class Meter(_M):
    id: str
    gateway: str
    meter_id: str | None = None  # the gateway's meter id; defaults to ``id``
    rollover: Decimal | None = None  # register wraps to 0 at this value (kWh)
    import_quantity: str = "1-0:1.8.0"
    export_quantity: str = "1-0:2.8.0"
    # what it measures: electricity and heat in kWh, water and gas in m³; only electricity
    # takes part in the solar community
    medium: Literal["electricity", "heat", "water", "gas"] = "electricity"

    @property
    def source_id(self) -> str:
        return self.meter_id or self.id

    @property
    def unit(self) -> str:
        return "m³" if self.medium in ("water", "gas") else "kWh"


class BillingPoint(_M):
    id: str
    building: str
    name: str
    kind: Literal["unit", "common", "charging", "laundry"] = "unit"
    area_m2: Decimal | None = None
    tariff: str
    owner: str  # account billed while vacant


class MeterAssignment(_M):
    billing_point: str
    meter: str
    start: date | datetime = Field(alias="from")
    end: date | datetime | None = Field(default=None, alias="to")
    start_reading: Decimal | None = None
    end_reading: Decimal | None = None


class Advance(_M):
    paid_on: date = Field(alias="date")
    amount: Decimal


class Account(_M):
    id: str
    name: str
    kind: Literal["consumer", "owner"] = "consumer"
    email: str | None = None
    delivery: Literal["email", "postal"] = "postal"
    address: Address | None = None
    advances: list[Advance] = []


class Occupancy(_M):
    billing_point: str
    account: str
    start: date | datetime = Field(alias="from")  # a date, or the handover's local time
    end: date | datetime | None = Field(default=None, alias="to")
    start_reading: Decimal | None = Field(default=None, ge=0)  # kWh noted at move-in
    end_reading: Decimal | None = Field(default=None, ge=0)  # kWh noted at move-out


class Badge(_M):
    tag: str
    account: str


class Charger(_M):
    """A charger whose sessions are billed by calibration law (OCMF signed values)."""

    id: str  # its OCPP charge point id
    gateway: str | None = None  # None: this id on any of the site's gateways
    calibrated: bool = True
    # the meter's public key (hex or base64 DER); None: pinned from its first session
    public_key: str | None = Field(default=None, max_length=1024)
    meter_serial: str | None = None


class TimeOfUse(_M):
    peak_days: list[Day] = ["mon", "tue", "wed", "thu", "fri"]
    peak_from: time = time(7)
    peak_to: time = time(20)
    holidays: list[date] = []  # off-peak all day


class VatRate(_M):
    """A statutory VAT rate in force from a date (until the category's next row)."""

    category: str = "standard"
    valid_from: date = Field(alias="from")
    rate: Decimal = Field(ge=0, le=100)


class Component(_M):
    key: str
    label: str
    applies: Literal["solar", "grid", "all"] = "all"
    tou: Literal["peak", "offpeak", "all"] = "all"
    price: Decimal  # per kWh
    vat: Decimal = Decimal("8.1")
    vat_category: str | None = None  # else the site's dated rate of this category


class Fee(_M):
    key: str
    label: str
    monthly: Decimal
    vat: Decimal = Decimal("8.1")
    vat_category: str | None = None


class Demand(_M):
    """A power charge: price per kW of the month's highest 15-minute average power."""

    key: str
    label: str
    price: Decimal  # per kW and month
    vat: Decimal = Decimal("8.1")
    vat_category: str | None = None


class TariffVersion(_M):
    valid_from: date
    components: list[Component]
    fees: list[Fee] = []
    demand: list[Demand] = []


class Tariff(_M):
    id: str
    tou: TimeOfUse = TimeOfUse()
    versions: list[TariffVersion]


class SessionTariff(_M):
    kind: Literal["ev", "laundry", "ebike"]
    valid_from: date
    label: str
    per_kwh: Decimal = Decimal("0")
    per_session: Decimal = Decimal("0")
    per_hour: Decimal = Decimal("0")  # parking / plugged-in time
    per_minute: Decimal = Decimal("0")
    vat: Decimal = Decimal("8.1")
    vat_category: str | None = None


class SiteModel(_M):
    site: Site
    buildings: list[Building]
    meters: list[Meter] = []
    billing_points: list[BillingPoint]
    meter_assignments: list[MeterAssignment] = []
    accounts: list[Account]
    occupancy: list[Occupancy] = []
    badges: list[Badge] = []
    tariffs: list[Tariff]
    session_tariffs: list[SessionTariff] = []
    vat_rates: list[VatRate] = []
    chargers: list[Charger] = []

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.site.timezone)


def _cross_check(m: SiteModel) -> list[str]:
    """References between sections, and periods that must not overlap."""
    err: list[str] = []
    ids = {
        "building": {b.id for b in m.buildings},
        "meter": {x.id for x in m.meters},
        "billing_point": {b.id for b in m.billing_points},
        "account": {a.id for a in m.accounts},
        "tariff": {t.id for t in m.tariffs},
    }
    for section, items in (("buildings", m.buildings), ("meters", m.meters),
                           ("billing_points", m.billing_points), ("accounts", m.accounts),
                           ("tariffs", m.tariffs)):
        seen: set[str] = set()
        for i, it in enumerate(items):
            if it.id in seen:
                err.append(f"{section}[{i}].id: duplicate id {it.id!r}")
            seen.add(it.id)

    def ref(path: str, kind: str, value: str | None) -> None:
        if value is not None and value not in ids[kind]:
            err.append(f"{path}: unknown {kind} {value!r}")

    ref("site.grid_meter", "meter", m.site.grid_meter)
    ref("site.battery_meter", "meter", m.site.battery_meter)
    for i, p in enumerate(m.site.pv_meters):
        ref(f"site.pv_meters[{i}]", "meter", p)
    for i, b in enumerate(m.billing_points):
        ref(f"billing_points[{i}].building", "building", b.building)
        ref(f"billing_points[{i}].tariff", "tariff", b.tariff)
        ref(f"billing_points[{i}].owner", "account", b.owner)
    for i, a in enumerate(m.meter_assignments):
        ref(f"meter_assignments[{i}].billing_point", "billing_point", a.billing_point)
        ref(f"meter_assignments[{i}].meter", "meter", a.meter)
        for k in ("start", "end"):
            v = getattr(a, k)
            if isinstance(v, datetime) and (v.minute % 15 or v.second or v.microsecond):
                key = "from" if k == "start" else "to"
                err.append(f"meter_assignments[{i}].{key}: must be on a quarter hour, got {v}")
    for i, o in enumerate(m.occupancy):
        ref(f"occupancy[{i}].billing_point", "billing_point", o.billing_point)
        ref(f"occupancy[{i}].account", "account", o.account)
        if o.end is not None and local_dt(o.end, m.tz) <= local_dt(o.start, m.tz):
            err.append(f"occupancy[{i}].to: {o.end} is not after from {o.start}")
        err += _handover_meter(m, i, o)
    for i, bd in enumerate(m.badges):
        ref(f"badges[{i}].account", "account", bd.account)
    for i, t in enumerate(m.tariffs):
        if not t.versions:
            err.append(f"tariffs[{i}].versions: at least one version is needed")
        froms = [v.valid_from for v in t.versions]
        if froms != sorted(set(froms)):
            err.append(f"tariffs[{i}].versions: valid_from must be strictly increasing")
    err += _overlaps(m)
    err += _vat_categories(m)
    return err


def _vat_categories(m: SiteModel) -> list[str]:
    """Every VAT category named exists in vat_rates; a category's dates differ."""
    err: list[str] = []
    known = {r.category for r in m.vat_rates}
    for c in known:
        days = [r.valid_from for r in m.vat_rates if r.category == c]
        if len(days) != len(set(days)):
            err.append(f"vat_rates: category {c!r} has two rates from the same day")
    items = [(f"tariffs[{i}].versions[{j}].{kind}[{k}]", x)
             for i, t in enumerate(m.tariffs) for j, v in enumerate(t.versions)
             for kind in ("components", "fees", "demand")
             for k, x in enumerate(getattr(v, kind))]
    items += [(f"session_tariffs[{i}]", t) for i, t in enumerate(m.session_tariffs)]
    for path, x in items:
        if x.vat_category is not None and x.vat_category not in known:
            err.append(f"{path}.vat_category: no vat_rates of category {x.vat_category!r}")
    return err


def local_dt(v: date | datetime, tz: ZoneInfo) -> datetime:
    """A site-local naive date-time: a date is its midnight, an offset date-time is
    converted to the site's zone (so dates and date-times of the file compare)."""
    if isinstance(v, datetime):
        return v.astimezone(tz).replace(tzinfo=None) if v.tzinfo else v
    return datetime(v.year, v.month, v.day)


def nearest_quarter(v: datetime) -> datetime:
    """The 15-min boundary nearest ``v`` (half-way rounds up); zone offsets are whole
    quarter hours, so local and UTC boundaries are the same instants."""
    hour = v.replace(minute=0, second=0, microsecond=0)
    s = (v - hour).total_seconds()
    return hour + timedelta(seconds=int((s + 450) // 900) * 900)


def _handover_meter(m: SiteModel, i: int, o: Occupancy) -> list[str]:
    """A handover reading needs one meter measuring the billing point across the split."""
    err: list[str] = []
    spans = [(local_dt(a.start, m.tz), local_dt(a.end, m.tz) if a.end is not None else None)
             for a in m.meter_assignments if a.billing_point == o.billing_point]
    for key, when, reading in (("start_reading", o.start, o.start_reading),
                               ("end_reading", o.end, o.end_reading)):
        if reading is None:
            continue
        if when is None:
            err.append(f"occupancy[{i}].{key}: a move-out reading needs a 'to'")
            continue
        at = nearest_quarter(local_dt(when, m.tz))
        if any(lo == at or hi == at for lo, hi in spans):
            err.append(f"occupancy[{i}].{key}: the meter of {o.billing_point} is replaced at "
                       f"{at}; give the meters' readings in meter_assignments instead")
        elif not any(lo < at and (hi is None or at < hi) for lo, hi in spans):
            err.append(f"occupancy[{i}].{key}: {o.billing_point} has no meter at {at}")
    return err


def _overlaps(m: SiteModel) -> list[str]:
    err: list[str] = []
    by_bp: dict[str, list[tuple[int, Occupancy]]] = {}
    for i, o in enumerate(m.occupancy):
        by_bp.setdefault(o.billing_point, []).append((i, o))
    for rows in by_bp.values():
        rows.sort(key=lambda r: local_dt(r[1].start, m.tz))
        for (i, a), (j, b) in zip(rows, rows[1:], strict=False):
            if a.end is None or local_dt(a.end, m.tz) > local_dt(b.start, m.tz):
                err.append(f"occupancy[{j}].from: {b.billing_point} already occupied by "
                           f"{a.account} on {b.start}")
            elif (local_dt(a.end, m.tz) == local_dt(b.start, m.tz)
                  and a.end_reading is not None and b.start_reading is not None
                  and a.end_reading != b.start_reading):
                err.append(f"occupancy[{j}].start_reading: {b.start_reading} differs from "
                           f"the move-out reading {a.end_reading} of occupancy[{i}]")
    return err


def parse_site(data: dict) -> SiteModel:
    """Validate plain data (a parsed TOML document) into a SiteModel."""
    try:
        model = SiteModel.model_validate(data)
    except ValidationError as exc:
        raise SiteModelError([
            ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"])
            .replace(".[", "[") + f": {e['msg']}"
            for e in exc.errors()
        ]) from None
    errors = _cross_check(model)
    if errors:
        raise SiteModelError(errors)
    return model


def load_site(path: str | Path) -> SiteModel:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SiteModelError([f"{p.name}: {exc}"]) from None
    return parse_site(data)


def site_to_json(model: SiteModel) -> dict:
    """Plain JSON form (aliases, exact decimals as strings) that parse_site reads back."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
