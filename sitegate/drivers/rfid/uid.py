"""What a reader sends, turned into the text the badge list normalizes.

Many keyboard-wedge and serial readers print a card's UID as a decimal number (the 4-byte
UID read as an unsigned integer, often zero-padded to 10 digits) rather than in hex. The
badge list compares hex UIDs, so such a reader is configured ``encoding = "decimal"`` and
its number becomes the hex UID here; the badge list's own normalization (case,
separators, byte order per ``badge_format``) then applies exactly as for an OCPP charger.
"""

from __future__ import annotations

MAX_UID = 40  # the badge list's id limit


class BadRead(ValueError):
    pass


def reader_text(raw: str, encoding: str) -> str:
    text = raw.strip()
    if not text or len(text) > MAX_UID:
        raise BadRead(f"not a UID (length {len(text)}): {text[:MAX_UID]!r}")
    if not text.isprintable():
        raise BadRead(f"not a UID (unprintable characters): {text!r}")
    if encoding == "decimal":
        if not text.isdigit():
            raise BadRead(f"not a decimal UID: {text!r}")
        value = int(text)
        nbytes = 4 if value < 1 << 32 else 7 if value < 1 << 56 else 10
        if value >= 1 << 80:
            raise BadRead(f"decimal UID too large: {text!r}")
        return value.to_bytes(nbytes, "big").hex().upper()
    return text
