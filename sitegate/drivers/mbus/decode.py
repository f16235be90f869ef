"""EN 13757-3 application layer: one RSP_UD telegram -> the meter's identity and its records.

The frame header (identity, status) is read here; the data records are decoded by
pymbusparser (exact decimals). Where pymbusparser gives up on a record we fix up in
``records.py`` (plain-text VIF units, BCD with error nibbles) and carry on with the rest,
so one odd record no longer costs the whole telegram.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pymbusparser

from sitegate.drivers.mbus import records as rec_fix
from sitegate.drivers.mbus.frames import FrameError, parse_frame
from sitegate.drivers.mbus.units import canonical

# EN 13757-3 CI 0x70 application error codes.
APP_ERRORS = {
    0: "unspecified error", 1: "unimplemented CI-field", 2: "buffer too long, truncated",
    3: "too many records", 4: "premature end of record", 5: "more than 10 DIFEs",
    6: "more than 10 VIFEs", 8: "application busy", 9: "too many readouts",
}

# EN 13757-3 device type (medium) codes.
MEDIA = {
    0x00: "other", 0x01: "oil", 0x02: "electricity", 0x03: "gas", 0x04: "heat (outlet)",
    0x05: "steam", 0x06: "warm water", 0x07: "water", 0x08: "heat cost allocator",
    0x09: "compressed air", 0x0A: "cooling (outlet)", 0x0B: "cooling (inlet)",
    0x0C: "heat (inlet)", 0x0D: "heat/cooling", 0x0E: "bus/system component",
    0x0F: "unknown", 0x15: "hot water", 0x16: "cold water", 0x17: "dual water",
    0x18: "pressure", 0x19: "A/D converter", 0x1A: "smoke detector", 0x1B: "room sensor",
    0x1C: "gas detector", 0x20: "breaker", 0x21: "valve", 0x25: "customer unit",
    0x28: "waste water", 0x29: "garbage", 0x31: "communication controller",
    0x36: "radio converter (system side)", 0x37: "radio converter (meter side)",
}

FUNCTIONS = {
    "Instantaneous value": "instantaneous", "Maximum value": "maximum",
    "Minimum value": "minimum", "Value during error state": "error",
    "Manufacturer specific": "manufacturer_specific",
    "More records follow": "more_records_follow",
}


class DecodeError(ValueError):
    """The bytes are not a decodable M-Bus data telegram; ``kind`` says why."""

    def __init__(self, message: str, kind: str = "garbled", raw_hex: str = "") -> None:
        super().__init__(message)
        self.kind = kind  # "frame", "not_data", "application_error", "unsupported_ci", ...
        self.raw_hex = raw_hex


@dataclass(frozen=True, slots=True)
class Identity:
    id: str  # 8 BCD digits (hex digits when the meter sends a non-BCD number)
    manufacturer: str
    version: int
    medium: str
    medium_code: int
    access_number: int
    status: int
    signature: int

    @property
    def secondary(self) -> str:
        man = _man_value(self.manufacturer)
        return f"{self.id}{man:04X}{self.version:02X}{self.medium_code:02X}"


@dataclass(frozen=True, slots=True)
class Record:
    index: int
    quantity: str  # pymbusparser's name, e.g. "Energy", "Flow temperature", "Volume"
    value: Decimal | str | None  # Decimal for numbers; text/ISO date; None when unreadable
    unit: str  # canonical SI-style unit ("Wh", "m3", "°C", "s", ...), "" if none
    function: str  # instantaneous | maximum | minimum | error | manufacturer_specific | ...
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    qualifiers: tuple[str, ...] = ()  # further VIFE meanings
    raw_hex: str = ""
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "quantity": self.quantity,
            "value": None if self.value is None else str(self.value), "unit": self.unit,
            "function": self.function, "storage": self.storage, "tariff": self.tariff,
            "subunit": self.subunit, "qualifiers": list(self.qualifiers),
            "raw": self.raw_hex, "flags": list(self.flags),
        }


@dataclass(slots=True)
class Telegram:
    address: int
    ci: int
    identity: Identity | None
    records: list[Record]
    more_follow: bool = False  # DIF 0x1F: the meter has another telegram
    problems: list[str] = field(default_factory=list)  # why the telegram is partial
    flags: list[str] = field(default_factory=list)  # telegram-wide, e.g. status errors
    raw_hex: str = ""

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    def to_dict(self) -> dict[str, Any]:
        ident = self.identity
        return {
            "address": self.address, "ci": f"{self.ci:02X}",
            "identity": None if ident is None else {
                "id": ident.id, "manufacturer": ident.manufacturer, "version": ident.version,
                "medium": ident.medium, "medium_code": ident.medium_code,
                "access_number": ident.access_number, "status": f"{ident.status:02X}",
                "signature": f"{ident.signature:04X}", "secondary": ident.secondary,
            },
            "more_follow": self.more_follow, "partial": self.partial,
            "problems": self.problems, "flags": self.flags,
            "records": [r.to_dict() for r in self.records], "raw": self.raw_hex,
        }


def _man_value(code: str) -> int:
    if len(code) != 3 or not code.isalpha():
        return 0xFFFF
    a, b, c = (ord(ch.upper()) - 64 for ch in code)
    return (a << 10) | (b << 5) | c


def manufacturer_code(value: int) -> str:
    letters = [((value >> s) & 0x1F) + 64 for s in (10, 5, 0)]
    if any(not 65 <= ch <= 90 for ch in letters):
        return f"?{value:04X}"
    return "".join(map(chr, letters))


def status_flags(status: int) -> list[str]:
    """EN 13757-3 status byte: application state, power low, permanent/temporary error."""
    out = []
    app = status & 0x03
    if app == 1:
        out.append("meter_busy")
    elif app == 2:
        out.append("meter_application_error")
    elif app == 3:
        out.append("meter_alarm")
    if status & 0x04:
        out.append("power_low")
    if status & 0x08:
        out.append("meter_permanent_error")
    if status & 0x10:
        out.append("meter_temporary_error")
    if out and out != ["power_low"]:
        out.insert(0, "meter_status_error")
    return out


def to_bytes(data: bytes | bytearray | str) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    text = re.sub(r"[\s:,]", "", data).removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise DecodeError(f"not hexadecimal: {exc}", kind="input") from exc


def _identity(h: bytes) -> tuple[Identity, list[str]]:
    flags = []
    id_hex = h[0:4][::-1].hex().upper()
    if not id_hex.isdigit():
        flags.append("non_bcd_id")  # kept as hex; still unique on the bus
    man = int.from_bytes(h[4:6], "little")
    ident = Identity(id=id_hex, manufacturer=manufacturer_code(man), version=h[6],
                     medium=MEDIA.get(h[7], f"reserved 0x{h[7]:02X}"), medium_code=h[7],
                     access_number=h[8], status=h[9],
                     signature=int.from_bytes(h[10:12], "little"))
    return ident, flags


def decode_telegram(data: bytes | bytearray | str) -> Telegram:
    """Decode one RSP_UD long frame. Raises DecodeError when nothing can be read; a frame
    read only in part comes back with ``problems`` set and the records it could read."""
    raw = to_bytes(data)
    raw_hex = raw.hex().upper()
    try:
        frame = parse_frame(raw)
    except FrameError as exc:
        raise DecodeError(str(exc), kind="frame", raw_hex=raw_hex) from exc
    if frame.kind != "long" or frame.ci is None:
        raise DecodeError(f"a {frame.kind} frame carries no meter data", kind="not_data",
                          raw_hex=raw_hex)
    ci, payload = frame.ci, frame.data
    if ci == 0x70:
        code = payload[0] if payload else 0
        raise DecodeError(f"meter reports application error {code}: "
                          f"{APP_ERRORS.get(code, 'reserved')}", kind="application_error",
                          raw_hex=raw_hex)
    identity: Identity | None = None
    tel_flags: list[str] = []
    if ci in (0x72, 0x76):
        if len(payload) < 12:
            raise DecodeError("telegram ends inside the 12-byte data header", kind="frame",
                              raw_hex=raw_hex)
        identity, tel_flags = _identity(payload[:12])
        if ci == 0x76:  # fields most significant byte first: turn them round
            identity, tel_flags = _identity(payload[3::-1] + payload[4:12])
        body = payload[12:]
        status = identity.status
    elif ci == 0x7A:
        if len(payload) < 4:
            raise DecodeError("telegram ends inside the 4-byte data header", kind="frame",
                              raw_hex=raw_hex)
        status, body = payload[1], payload[4:]
    elif ci == 0x78:
        status, body = 0, payload
    elif ci in (0x73, 0x77):
        return rec_fix.fixed_structure(frame.a, ci, payload, raw_hex)
    else:
        raise DecodeError(f"unsupported CI-field 0x{ci:02X}", kind="unsupported_ci",
                          raw_hex=raw_hex)
    tel_flags += status_flags(status)
    records, problems = decode_records(body)
    more = any(r.function == "more_records_follow" for r in records)
    return Telegram(address=frame.a, ci=ci, identity=identity, records=records,
                    more_follow=more, problems=problems, flags=tel_flags, raw_hex=raw_hex)


def parse_records_safe(data: bytes) -> list[dict[str, Any]] | None:
    """pymbusparser.parse_records, None instead of any error (a Rust panic included)."""
    try:
        return pymbusparser.parse_records(data)
    except Exception:  # MbusParserError, and pyo3's PanicException on odd input
        return None
    except BaseException as exc:  # PanicException derives from BaseException
        if type(exc).__name__ == "PanicException":
            return None
        raise


def decode_records(body: bytes) -> tuple[list[Record], list[str]]:
    """All data records of a telegram body. Fast path: pymbusparser reads them all. When it
    gives up, walk the records one by one (our own DIF/VIF walk), decode each with
    pymbusparser, fix up the ones it rejects, and keep the rest raw if one is unreadable."""
    whole = parse_records_safe(body)
    if whole is not None:
        return [_record(i, r) for i, r in enumerate(whole)], []
    out: list[Record] = []
    problems: list[str] = []
    pos = 0
    while pos < len(body):
        if body[pos] == 0x2F:  # idle filler
            pos += 1
            continue
        if body[pos] & 0x0F == 0x0F:  # manufacturer data (0x1F: more records) to the end
            rest = parse_records_safe(body[pos:]) or []
            out += [_record(len(out) + i, r) for i, r in enumerate(rest[:1])]
            if not rest:
                problems.append(f"manufacturer data at body offset {pos} unreadable")
            break
        span = rec_fix.record_span(body, pos)
        one = parse_records_safe(body[pos:span.end]) if span is not None else None
        if one is not None and len(one) == 1:
            out.append(_record(len(out), one[0]))
            pos = span.end  # type: ignore[union-attr]
            continue
        fixed = rec_fix.fallback_record(body, pos, len(out))
        if fixed is None:
            problems.append(f"record at body offset {pos} unreadable; "
                            f"{len(body) - pos} bytes kept raw: {body[pos:].hex().upper()}")
            break
        rec, end = fixed
        out.append(rec)
        pos = end
    return out, problems


def _record(index: int, r: dict[str, Any]) -> Record:
    v = r["value"]
    kind = v.get("kind")
    value: Decimal | str | None
    flags: tuple[str, ...] = ()
    try:
        if kind == "decimal":
            value = Decimal(v["value"])
        elif kind == "float":
            f = Decimal(str(v["value"]))
            # NaN/inf: the meter's way of saying 'no value'; never a number in the buffer.
            value = f * _float_scale(r) if f.is_finite() else None
        elif kind in ("manufacturer_specific", None):
            value = r.get("data_hex", "").replace(" ", "")
        elif kind in ("date", "datetime") and isinstance(v.get("value"), dict):
            value = _wildcard_date(bytes.fromhex(r.get("data_hex", "")))
        else:
            value = str(v.get("value", ""))
    except (ArithmeticError, ValueError, TypeError, KeyError):
        value = None
    if value is None:
        flags = ("unreadable_value",)
    unit, factor = canonical(r.get("unit"))
    if factor != 1 and isinstance(value, Decimal):
        value = value * factor
    quantities = r.get("quantities") or []
    return Record(
        index=index, quantity=quantities[0] if quantities else "",
        value=value, unit=unit,
        function=FUNCTIONS.get(r["function"], r["function"]),
        storage=int(r.get("storage_number", 0)), tariff=int(r.get("tariff", 0)),
        subunit=int(r.get("subunit", 0)), qualifiers=tuple(quantities[1:]),
        raw_hex=(r.get("header_hex", "") + r.get("data_hex", "")).replace(" ", ""),
        flags=flags,
    )


def _float_scale(r: dict[str, Any]) -> Decimal:
    """pymbusparser 0.5.3 leaves the VIF's power of ten off 32-bit real values (EDC,
    Pollustat, Calec frames). Ask it for the scale of the same VIF on the integer 1."""
    header = bytes.fromhex(r.get("header_hex", ""))
    if not header:
        return Decimal(1)
    probe = bytes(((header[0] & 0xF0) | 0x04,)) + header[1:] + b"\x01\x00\x00\x00"
    try:
        scaled = pymbusparser.parse_records(probe)[0]["value"]
        return Decimal(scaled["value"]) if scaled.get("kind") == "decimal" else Decimal(1)
    except (pymbusparser.MbusParserError, KeyError, IndexError):
        return Decimal(1)


def _wildcard_date(data: bytes) -> str:
    """Type G (2 bytes) or F (4 bytes) date that pymbusparser returns as wildcard parts
    ("every", "invalid"): it takes day 31 for 'every day'. Print the fields as sent."""
    if len(data) == 2:
        day, month = data[0] & 0x1F, data[1] & 0x0F
        year = ((data[0] & 0xE0) >> 5) | ((data[1] & 0xF0) >> 1)
        return f"{2000 + year:04d}-{month:02d}-{day:02d}"
    if len(data) == 4:
        minute, hour = data[0] & 0x3F, data[1] & 0x1F
        day, month = data[2] & 0x1F, data[3] & 0x0F
        year = ((data[2] & 0xE0) >> 5) | ((data[3] & 0xF0) >> 1)
        return f"{2000 + year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00"
    return data.hex().upper()
