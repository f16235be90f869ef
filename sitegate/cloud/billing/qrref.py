"""Swiss QR reference (QRR): 26 digits plus a modulo 10 recursive check digit."""

from __future__ import annotations

from stdnum.ch import esr


def qr_reference(prefix: str, number: int) -> str:
    """Site prefix, then the invoice number, zero-padded to 26 digits, then the check digit."""
    body = prefix + str(number).rjust(26 - len(prefix), "0")
    if len(body) != 26 or not body.isdigit():
        raise ValueError(f"invoice number {number} does not fit a QR reference after {prefix!r}")
    return body + esr.calc_check_digit(body)
