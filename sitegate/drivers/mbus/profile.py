"""M-Bus profiles (TOML data in drivers/profiles/mbus/): which records of a telegram
become which gateway quantities, in which unit.

A mapping matches a record by decoder quantity, function, tariff and subunit, for the
listed storage numbers; storage N > 0 appends ``.s<N>`` to the name (N = 1 is the due-date
value on most meters). ``keep_unmapped`` (the generic profile) keeps every other numeric
record under a name derived from the record.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

from sitegate.drivers.mbus.decode import Record

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles" / "mbus"
FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")
FUNCTION_SUFFIX = {"instantaneous": "", "maximum": ".max", "minimum": ".min", "error": ".err"}

# Exact conversions from the decoder's canonical units.
CONVERSIONS: dict[tuple[str, str], tuple[int, int]] = {  # value * num / den
    ("Wh", "kWh"): (1, 1000), ("Wh", "MWh"): (1, 10**6), ("J", "kJ"): (1, 1000),
    ("J", "MJ"): (1, 10**6), ("J", "GJ"): (1, 10**9), ("W", "kW"): (1, 1000),
    ("m3", "l"): (1000, 1), ("m3/h", "l/h"): (1000, 1),
    ("s", "min"): (1, 60), ("s", "h"): (1, 3600), ("s", "d"): (1, 86400),
}


class ProfileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Mapping:
    record: str
    name: str
    unit: str | None  # None: keep the canonical unit
    function: str = "instantaneous"
    tariff: int = 0
    subunit: int = 0
    storage: tuple[int, ...] = (0,)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    vendor: str
    model: str
    keep_unmapped: bool
    maps: tuple[Mapping, ...]
    # [identify]: the manufacturer code and device types (EN 13757-3 media) of the meters
    # this profile is for; a scan proposes it for a meter reporting both
    manufacturer: str = ""
    media: tuple[int, ...] = ()


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


@cache
def load_profile(name: str) -> Profile:
    path = PROFILE_DIR / f"{name}.toml"
    if not re.fullmatch(r"[a-z0-9_]+", name) or not path.is_file():
        raise ProfileError(f"unknown M-Bus profile {name!r}; known: {', '.join(profile_names())}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path.name}: not valid TOML: {exc}") from exc
    return parse_profile(name, data)


def parse_profile(name: str, data: dict) -> Profile:
    known = {"vendor", "model", "medium", "source", "keep_unmapped", "map", "identify"}
    extra = set(data) - known
    if extra:
        raise ProfileError(f"{name}: unknown keys {sorted(extra)}")
    maps = []
    for i, m in enumerate(data.get("map", [])):
        where = f"{name}: map[{i}]"
        bad = set(m) - {"record", "name", "unit", "function", "tariff", "subunit", "storage"}
        if bad:
            raise ProfileError(f"{where}: unknown keys {sorted(bad)}")
        if not isinstance(m.get("record"), str) or not isinstance(m.get("name"), str):
            raise ProfileError(f"{where}: needs 'record' and 'name' strings")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", m["name"]):
            raise ProfileError(f"{where}: name {m['name']!r} must be snake_case")
        function = m.get("function", "instantaneous")
        if function not in FUNCTIONS:
            raise ProfileError(f"{where}: function must be one of {FUNCTIONS}")
        storage = m.get("storage", [0])
        storage = (storage,) if isinstance(storage, int) else tuple(storage)
        if not storage or not all(isinstance(s, int) and s >= 0 for s in storage):
            raise ProfileError(f"{where}: storage must be numbers >= 0")
        maps.append(Mapping(m["record"], m["name"], m.get("unit"), function,
                            int(m.get("tariff", 0)), int(m.get("subunit", 0)), storage))
    keys = [(m.record, m.function, m.tariff, m.subunit, s) for m in maps for s in m.storage]
    if len(keys) != len(set(keys)):
        raise ProfileError(f"{name}: two mappings match the same record")
    ident = data.get("identify", {})
    if not isinstance(ident, dict) or set(ident) - {"manufacturer", "media"}:
        raise ProfileError(f"{name}: identify takes manufacturer and media")
    manufacturer, media = ident.get("manufacturer", ""), ident.get("media", [])
    if not (isinstance(manufacturer, str) and isinstance(media, list)
            and all(isinstance(m, int) and 0 <= m <= 255 for m in media)):
        raise ProfileError(f"{name}: identify.manufacturer is a 3-letter code, "
                           "identify.media a list of device type codes (0-255)")
    return Profile(name, str(data.get("vendor", "")), str(data.get("model", "")),
                   bool(data.get("keep_unmapped", False)), tuple(maps),
                   manufacturer.upper(), tuple(media))


def identify(manufacturer: str, medium_code: int | None) -> str:
    """The profile for a meter reporting this manufacturer and device type: the one whose
    [identify] claims both, else the generic profile (it keeps every record)."""
    found = [n for n in profile_names() if (p := load_profile(n)).manufacturer
             and p.manufacturer == manufacturer.upper() and medium_code in p.media]
    return found[0] if len(found) == 1 else "mbus_generic"


def derived_name(rec: Record) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", rec.quantity.lower()).strip("_") or "record"
    name = base + FUNCTION_SUFFIX.get(rec.function, "")
    if rec.storage:
        name += f".s{rec.storage}"
    if rec.tariff:
        name += f".t{rec.tariff}"
    if rec.subunit:
        name += f".u{rec.subunit}"
    for q in rec.qualifiers:
        name += "." + (re.sub(r"[^a-z0-9]+", "_", q.lower()).strip("_") or "q")
    return name


def convert(value: Decimal, unit: str, target: str | None) -> tuple[Decimal, str]:
    if target is None or target == unit:
        return value, unit
    ratio = CONVERSIONS.get((unit, target))
    if ratio is None:
        raise ProfileError(f"cannot convert {unit!r} to {target!r}")
    # Exact for every value a meter sends (at most 28 significant digits).
    return value * ratio[0] / ratio[1], target


def apply(profile: Profile, rec: Record) -> tuple[str, Decimal, str] | None:
    """(quantity name, value, unit) for a numeric record this profile keeps, else None."""
    if not isinstance(rec.value, Decimal) or rec.function not in FUNCTIONS:
        return None
    if any("date" in q.lower() for q in rec.qualifiers):
        return None  # "date of end ..." VIFEs: a point in time coded as a number
    for m in profile.maps:
        if rec.qualifiers:
            break  # profiles name plain values; a qualified record is another quantity
        if (m.record == rec.quantity and m.function == rec.function and m.tariff == rec.tariff
                and m.subunit == rec.subunit and rec.storage in m.storage):
            value, unit = convert(rec.value, rec.unit, m.unit)
            name = m.name + (f".s{rec.storage}" if rec.storage else "")
            return name, value, unit
    if profile.keep_unmapped:
        return derived_name(rec), rec.value, rec.unit
    return None
