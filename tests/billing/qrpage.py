"""Reading an invoice PDF back as a bank's app would: the Swiss QR-bill decoded from the
rendered first page by zxing-cpp, and the QR reference's check digit recomputed."""

from __future__ import annotations

import pypdfium2
import zxingcpp


def qr_fields(pdf: bytes, dpi: int = 300) -> list[list[str]]:
    """The lines of each QR code on the PDF's first page (none: an empty list)."""
    page = pypdfium2.PdfDocument(pdf)[0]
    return [c.text.splitlines()
            for c in zxingcpp.read_barcodes(page.render(scale=dpi / 72).to_pil())]


def mod10_check_digit(digits: str) -> str:
    """Modulo 10 recursive (Swiss QR reference), written out independently of the code."""
    table = [0, 9, 4, 6, 8, 2, 7, 1, 3, 5]
    carry = 0
    for ch in digits:
        carry = table[(carry + int(ch)) % 10]
    return str((10 - carry) % 10)
