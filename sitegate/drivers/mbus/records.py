"""Our own fixes where pymbusparser gives up on a data record.

``record_span`` walks DIF/DIFE/VIF/VIFE to find where a record ends, so one record we cannot
read does not cost the records after it. ``fallback_record`` then decodes the two cases
real meters send that pymbusparser rejects: plain-text units (VIF 0x7C/0xFC, e.g. "%RH") and
BCD values holding error nibbles A-F (the record is kept, its value marked unreadable).
``fixed_structure`` reads the old fixed data structure (CI 0x73/0x77).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sitegate.drivers.mbus.decode import Record, Telegram

# Data field (DIF low nibble) -> data length in bytes; 0x0D is variable (LVAR byte).
DATA_LEN = {0x0: 0, 0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x5: 4, 0x6: 6, 0x7: 8,
            0x8: 0, 0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}
BCD_FIELDS = {0x9, 0xA, 0xB, 0xC, 0xE}
FUNCTION = {0: "instantaneous", 1: "maximum", 2: "minimum", 3: "error"}
MAX_EXTENSIONS = 10  # EN 13757-3 allows at most 10 DIFEs and 10 VIFEs


@dataclass(slots=True)
class Span:
    start: int
    end: int
    dif: int
    storage: int
    tariff: int
    subunit: int
    vif: int
    text: str | None  # plain-text unit
    vifes: list[int]
    data_start: int


def record_span(body: bytes, pos: int) -> Span | None:
    """Structure of the record at ``pos``; None when it is truncated or malformed."""
    try:
        return _span(body, pos)
    except IndexError:
        return None


def _span(body: bytes, pos: int) -> Span | None:
    start = pos
    dif = body[pos]
    pos += 1
    if dif & 0x0F == 0x0F:
        return None  # manufacturer data: pymbusparser handles it; we never get here with it
    storage, tariff, subunit = (dif >> 6) & 1, 0, 0
    ext = dif & 0x80
    n = 0
    while ext:
        dife = body[pos]
        pos += 1
        storage |= (dife & 0x0F) << (1 + 4 * n)
        tariff |= ((dife >> 4) & 0x03) << (2 * n)
        subunit |= ((dife >> 6) & 1) << n
        n += 1
        ext = dife & 0x80
        if n > MAX_EXTENSIONS:
            return None
    vif = body[pos]
    pos += 1
    text = None
    vifes: list[int] = []
    if vif & 0x7F == 0x7C:
        length = body[pos]
        raw = body[pos + 1:pos + 1 + length]
        if len(raw) < length:
            return None
        text = raw[::-1].decode("latin-1")
        pos += 1 + length
    ext = vif & 0x80
    while ext:
        vife = body[pos]
        pos += 1
        vifes.append(vife)
        ext = vife & 0x80
        if len(vifes) > MAX_EXTENSIONS:
            return None
    field = dif & 0x0F
    if field == 0x0D:
        lvar = body[pos]
        pos += 1
        if lvar <= 0xBF:
            length = lvar
        elif lvar <= 0xDF:
            length = lvar & 0x0F
        elif lvar <= 0xEF:
            length = lvar - 0xE0
        elif lvar <= 0xFA:
            length = 4 * (lvar - 0xF0)
        else:
            return None
    else:
        length = DATA_LEN[field]
    data_start = pos
    if data_start + length > len(body):
        return None
    return Span(start, data_start + length, dif, storage, tariff, subunit, vif, text, vifes,
                data_start)


def _int_value(field: int, data: bytes) -> Decimal | None:
    if field in BCD_FIELDS:
        digits = data[::-1].hex()
        negative = digits.startswith("f")
        if negative:
            digits = digits[1:]
        if not digits.isdigit():
            return None
        return -Decimal(digits) if negative else Decimal(digits)
    if field in (1, 2, 3, 4, 6, 7):
        return Decimal(int.from_bytes(data, "little", signed=True))
    return None


def fallback_record(body: bytes, pos: int, index: int) -> tuple[Record, int] | None:
    from sitegate.drivers.mbus.decode import FUNCTIONS, Record, _record, parse_records_safe

    span = record_span(body, pos)
    if span is None:
        return None
    data = body[span.data_start:span.end]
    raw_hex = body[span.start:span.end].hex().upper()
    field = span.dif & 0x0F
    function = FUNCTION[(span.dif >> 4) & 0x03]
    if span.text is not None:
        value = _int_value(field, data)
        exp = 0
        for v in span.vifes:
            if 0x70 <= v & 0x7F <= 0x77:  # multiplicative correction factor 10^(nnn-6)
                exp += (v & 0x07) - 6
        if value is not None:
            value = value.scaleb(exp)
        flags = ("plain_text_unit",) if value is not None else ("plain_text_unit",
                                                                  "unreadable_value")
        return Record(index=index, quantity=span.text, value=value, unit=span.text,
                      function=function, storage=span.storage, tariff=span.tariff,
                      subunit=span.subunit, raw_hex=raw_hex, flags=flags), span.end
    # Same record with zeroed data: if that parses, only the value was bad (e.g. BCD
    # digits A-F that meters use to signal a sensor error).
    zeroed = body[span.start:span.data_start] + bytes(len(data))
    parsed = parse_records_safe(zeroed)
    if parsed is None or len(parsed) != 1:
        return None
    r = _record(index, parsed[0])
    return Record(index=index, quantity=r.quantity, value=None, unit=r.unit,
                  function=FUNCTIONS.get(parsed[0]["function"], r.function),
                  storage=r.storage, tariff=r.tariff, subunit=r.subunit,
                  qualifiers=r.qualifiers, raw_hex=raw_hex,
                  flags=("unreadable_value",)), span.end


# Fixed data structure unit codes (low 6 bits of the medium/unit bytes) we are sure of:
# (unit, factor). Energy, power and volume, as in EN 1434-3's table.
FIXED_UNITS: dict[int, tuple[str, Decimal]] = {
    0x02: ("Wh", Decimal(1)), 0x03: ("Wh", Decimal(10)), 0x04: ("Wh", Decimal(100)),
    0x05: ("Wh", Decimal(1000)), 0x06: ("Wh", Decimal(10**4)), 0x07: ("Wh", Decimal(10**5)),
    0x08: ("Wh", Decimal(10**6)), 0x09: ("Wh", Decimal(10**7)), 0x0A: ("Wh", Decimal(10**8)),
    0x0B: ("J", Decimal(10**3)), 0x0C: ("J", Decimal(10**4)), 0x0D: ("J", Decimal(10**5)),
    0x0E: ("J", Decimal(10**6)), 0x0F: ("J", Decimal(10**7)), 0x10: ("J", Decimal(10**8)),
    0x11: ("J", Decimal(10**9)), 0x12: ("J", Decimal(10**10)), 0x13: ("J", Decimal(10**11)),
    0x14: ("W", Decimal(1)), 0x15: ("W", Decimal(10)), 0x16: ("W", Decimal(100)),
    0x17: ("W", Decimal(1000)), 0x18: ("W", Decimal(10**4)), 0x19: ("W", Decimal(10**5)),
    0x1A: ("W", Decimal(10**6)), 0x1B: ("W", Decimal(10**7)), 0x1C: ("W", Decimal(10**8)),
    0x29: ("m3", Decimal("0.001")), 0x2A: ("m3", Decimal("0.01")),
    0x2B: ("m3", Decimal("0.1")), 0x2C: ("m3", Decimal(1)), 0x2D: ("m3", Decimal(10)),
    0x2E: ("m3", Decimal(100)),
}
FIXED_MEDIA = {0: "other", 1: "oil", 2: "electricity", 3: "gas", 4: "heat", 5: "steam",
               6: "hot water", 7: "water", 8: "heat cost allocator", 9: "compressed air",
               10: "cooling (outlet)", 11: "cooling (inlet)", 12: "bus/system component"}


def fixed_structure(address: int, ci: int, payload: bytes, raw_hex: str) -> Telegram:
    """CI 0x73 (0x77: fields most significant byte first): id, access number, status,
    medium/unit bytes, two counters (BCD unless status bit 7 says binary)."""
    from sitegate.drivers.mbus.decode import (
        DecodeError,
        Identity,
        Record,
        Telegram,
        status_flags,
    )

    if len(payload) < 16:
        raise DecodeError("fixed data structure shorter than 16 bytes", kind="frame",
                          raw_hex=raw_hex)
    msb = ci == 0x77

    def field(b: bytes) -> bytes:
        return b[::-1] if msb else b

    status = payload[5]
    b1, b2 = payload[6], payload[7]
    medium_code = (b1 >> 6) | ((b2 >> 6) << 2)
    ident = Identity(id=field(payload[0:4])[::-1].hex().upper(), manufacturer="",
                     version=0, medium=FIXED_MEDIA.get(medium_code, "unknown"),
                     medium_code=medium_code, access_number=payload[4], status=status,
                     signature=0)
    records = []
    for i, (code, data) in enumerate(((b1 & 0x3F, payload[8:12]), (b2 & 0x3F, payload[12:16]))):
        data = field(data)
        if status & 0x80:
            value: Decimal | None = Decimal(int.from_bytes(data, "little"))
        else:
            digits = data[::-1].hex()
            value = Decimal(digits) if digits.isdigit() else None
        unit, factor = FIXED_UNITS.get(code, ("", Decimal(1)))
        flags: tuple[str, ...] = () if code in FIXED_UNITS else (f"fixed_unit_code_{code:02X}",)
        if value is not None:
            value *= factor
        else:
            flags += ("unreadable_value",)
        records.append(Record(index=i, quantity=f"Counter {i + 1}", value=value, unit=unit,
                              function="instantaneous", raw_hex=data.hex().upper(),
                              flags=flags))
    return Telegram(address=address, ci=ci, identity=ident, records=records,
                    flags=status_flags(status & 0x1F), raw_hex=raw_hex)
