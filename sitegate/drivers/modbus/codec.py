"""Register words <-> exact values, per the profile's type, word order and scale."""

from __future__ import annotations

import struct
from decimal import Decimal

from sitegate.drivers.modbus.profile import WIDTH

_INT_FORMATS = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
    "int64": ">q", "uint64": ">Q", "float32": ">f", "float64": ">d",
}


class DecodeError(ValueError):
    pass


def _ordered(words: list[int], word_order: str) -> list[int]:
    return list(reversed(words)) if word_order == "little" else list(words)


def shortest_float(value: float, fmt: str) -> Decimal:
    """The shortest decimal that reads back as the same float32/float64.

    A float32 register holding 230.1 unpacks to 230.10000610351562 as a Python float; the
    meter meant 230.1, and the shortest round-tripping string says so exactly.
    """
    if value != value or value in (float("inf"), float("-inf")):
        raise DecodeError(f"not a number: {value}")
    packed = struct.pack(fmt, value)
    for precision in range(1, 18):
        text = f"{value:.{precision}g}"
        if struct.pack(fmt, float(text)) == packed:
            # "5e+01" is 50: keep the digits plain (no exponent) wherever it is shown
            exact = Decimal(text)
            return exact.quantize(Decimal(1)) if exact.as_tuple().exponent > 0 else exact
    return Decimal(repr(value))


def decode(words: list[int], type_: str, word_order: str, scale: Decimal) -> Decimal:
    width = WIDTH[type_]
    if len(words) != width:
        raise DecodeError(f"{type_} needs {width} registers, got {len(words)}")
    raw = b"".join(w.to_bytes(2, "big") for w in _ordered(words, word_order))
    fmt = _INT_FORMATS[type_]
    (number,) = struct.unpack(fmt, raw)
    value = shortest_float(number, fmt) if type_.startswith("float") else Decimal(number)
    return value * scale if scale != 1 else value


def encode(value: Decimal, type_: str, word_order: str, scale: Decimal) -> list[int]:
    """Inverse of ``decode``: what a meter would hold for ``value`` (used by the simulator)."""
    fmt = _INT_FORMATS[type_]
    raw_value = value / scale
    if type_.startswith("float"):
        raw = struct.pack(fmt, float(raw_value))
    else:
        integral = raw_value.to_integral_value()
        raw = struct.pack(fmt, int(integral))
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    return _ordered(words, word_order)
