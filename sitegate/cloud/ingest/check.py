"""Plain checks of uplink items, without a model object per reading.

A reading item in the form every gateway sends (the keys of ``ReadingItem``, an extended
ISO 8601 time with a zone, a plain decimal within ``check_value``'s bounds) is checked
with a few type tests and two regular expressions. Anything else (a lax form the model
would still accept, or a refusal whose wording matters) goes through the pydantic model
as before, so what is accepted and what a refusal says are the model's; this path only
ever accepts a subset of what the model accepts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from pydantic import ValidationError

from sitegate.sync import protocol as p

# Column limits of the store (tables.readings): longer text is refused as an item, not by
# the database (which would fail the whole transaction).
METER_MAX, QUANTITY_MAX, UNIT_MAX, FLAGS_MAX = 128, 64, 32, 1024

_KEYS = frozenset(p.ReadingItem.model_fields)
_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)\Z")
# Plain decimals within check_value (|v| < 1e12, at most 9 decimals) in the form they are
# stored and shown: no leading zeros, no "+", no negative zero. Any other form the model
# accepts ("4.5E+3", "007.5") is stored as its plain decimal (``plain``).
_VALUE_RE = re.compile(r"(?!-0(?:\.0+)?\Z)-?(?:0|[1-9]\d{0,11})(?:\.\d{1,9})?\Z")
value_ok = _VALUE_RE.match
FLAGS_ITEMS = 64  # flags of one reading in the typed decode (more: the general path says)


# -- the typed decode: a readings batch in the usual form, in one pass at C speed ------------
#
# msgspec decodes the JSON straight into these structs, checking types, keys and lengths
# as it goes; the structure is fixed by them (no nesting beyond a flags list, at most
# BATCH_MAX_ITEMS items), so the JSON bounds pass the general path needs is not needed.
# Anything they refuse goes the general way (``writer._envelope`` and ``reading``), so what
# is accepted and what a refusal says stay the same.

class Item(msgspec.Struct, forbid_unknown_fields=True):
    meter_id: Annotated[str, msgspec.Meta(min_length=1, max_length=METER_MAX)]
    ts: str
    quantity: Annotated[str, msgspec.Meta(min_length=1, max_length=QUANTITY_MAX)]
    value: str
    unit: Annotated[str, msgspec.Meta(max_length=UNIT_MAX)]
    quality: Literal["good", "suspect", "invalid"] = "good"
    read_at: str | None = None
    flags: Annotated[list[str], msgspec.Meta(max_length=FLAGS_ITEMS)] = []


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    stream: Literal["readings"]
    first: int
    last: int
    items: Annotated[list[Item], msgspec.Meta(max_length=p.BATCH_MAX_ITEMS)]
    v: int = p.PROTOCOL_VERSION
    epoch: str = p.LEGACY_EPOCH


_DECODE = msgspec.json.Decoder(_Batch).decode


def typed_readings(text: bytes) -> tuple[str, str, int, int, list[Item]] | None:
    """(stream, epoch, first, last, items) of a readings batch's JSON text in the usual
    form, items as ``Item``; None for anything else (the general path decides)."""
    try:
        b = _DECODE(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if (b.v != p.PROTOCOL_VERSION or not 1 <= b.first <= p.SEQ_MAX
            or not 1 <= b.last <= p.SEQ_MAX or len(b.items) != b.last - b.first + 1
            or not p._EPOCH_RE.match(b.epoch)):
        return None
    return b.stream, b.epoch, b.first, b.last, b.items


def as_sent(it: Item) -> dict[str, Any]:
    """A typed item as a plain dict, for the general checks and dead letters."""
    return msgspec.to_builtins(it)


class Times(dict):
    """ISO text -> aware UTC datetime, parsed once per distinct text (a poll cycle's
    readings share their ``ts``); KeyError-free: a text that is not the plain form maps
    to None."""

    def __missing__(self, text: str) -> datetime | None:
        when: datetime | None = None
        if type(text) is str and _TS_RE.match(text):
            try:
                when = datetime.fromisoformat(text).astimezone(UTC)
            except (ValueError, OverflowError):
                when = None
        self[text] = when
        return when


class BadItem(ValueError):
    """An item refused; the text says why (as the model would)."""


def reading(raw: Any, times: Times) -> tuple[str, datetime, str, str, str, str, list[str],
                                             datetime | None]:
    """(meter_id, ts, quantity, value, unit, quality, flags, read_at) of a reading item,
    times in UTC, the value as a plain decimal; BadItem with the reason when it is
    refused."""
    if type(raw) is dict and raw.keys() <= _KEYS:
        try:
            meter, qty, value, unit = raw["meter_id"], raw["quantity"], raw["value"], raw["unit"]
            ts = times[raw["ts"]]
            read_at_text = raw.get("read_at")
            read_at = None if read_at_text is None else times[read_at_text]
        except (KeyError, TypeError):  # missing, or not a text: the model says why
            ts = read_at = read_at_text = None
        quality = raw.get("quality", p.GOOD)
        flags = raw.get("flags", _NO_FLAGS)
        if (ts is not None and (read_at_text is None or read_at is not None)
                and type(meter) is str and 0 < len(meter) <= METER_MAX
                and type(qty) is str and 0 < len(qty) <= QUANTITY_MAX
                and type(unit) is str and len(unit) <= UNIT_MAX
                and type(value) is str and _VALUE_RE.match(value)
                and (quality == p.GOOD or quality == p.SUSPECT or quality == p.INVALID)
                and (flags is _NO_FLAGS or (type(flags) is list and plain_flags(flags)))):
            return (meter, ts, qty, value, unit, quality,
                    [] if flags is _NO_FLAGS else flags, read_at)
    try:
        it = p.ReadingItem.model_validate(raw)
    except ValidationError as exc:
        raise BadItem(p._short(exc)) from None
    _bounded(it.meter_id, it.quantity, it.unit, it.flags)
    try:
        ts, read_at = it.ts.astimezone(UTC), it.read_at and it.read_at.astimezone(UTC)
    except OverflowError:
        raise BadItem("ts or read_at out of range in UTC") from None
    return it.meter_id, ts, it.quantity, plain(it.value), it.unit, it.quality, it.flags, read_at


def plain(value: str) -> str:
    """A decimal text the model accepted as it is stored and shown: "4.5E+3" -> "4500",
    "007.50" -> "7.50", "-0.0" -> "0.0" (trailing zeros stay: the meter's resolution)."""
    d = Decimal(value)
    return format(d if d else d.copy_abs(), "f")


_NO_FLAGS: list[str] = []


def plain_flags(flags: list[Any]) -> bool:
    return all(type(f) is str for f in flags) and sum(len(f) + 3 for f in flags) <= FLAGS_MAX


def _bounded(meter: str, qty: str, unit: str, flags: list[str]) -> None:
    for name, text, most in (("meter_id", meter, METER_MAX), ("quantity", qty, QUANTITY_MAX),
                             ("unit", unit, UNIT_MAX)):
        if len(text) > most:
            raise BadItem(f"{name}: longer than {most} characters")
    if flags and sum(len(f) + 3 for f in flags) > FLAGS_MAX:
        raise BadItem(f"flags: longer than {FLAGS_MAX} characters")
