"""The letter the cloud's PDFs are printed on: an A4 page, the sender's letterhead, the
recipient's address where an envelope's window shows it, a title, and the totals block.

The invoice (``billing/pdf.py``) and the expense statement (``expense/pdf.py``) are both
written on it, so they look alike and change together. Words come from the caller (the
i18n catalogue in the site's language); this module places them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fpdf import FPDF

FIXED = datetime(2000, 1, 1, tzinfo=UTC)  # same data -> same PDF bytes
TOTALS_X, TOTALS_LABEL_W, TOTALS_AMOUNT_W, TOTALS_ROW = 120, 57, 20, 5.0


def latin1(s: object) -> str:
    """Core PDF fonts are Latin-1: anything else becomes '?' instead of failing."""
    return str(s).replace("\u2013", "-").encode("latin-1", "replace").decode("latin-1")


def span(first: str, end: str) -> str:
    """A line's [from, to): whole days show their last day; a move at a time of day shows
    the time (the energy line of a handover), in the short form the column has room for."""
    if "T" not in first + end:
        last = date.fromisoformat(end) - timedelta(days=1)  # "to" is exclusive
        return f"{first}..{last.isoformat()}"

    def short(v: str, exclusive: bool) -> str:
        if "T" in v:
            dt = datetime.fromisoformat(v)
            return f"{dt:%d.%m.%y %H:%M}"
        d = date.fromisoformat(v) - timedelta(days=1 if exclusive else 0)
        return f"{d:%d.%m.%y}"

    return f"{short(first, False)}-{short(end, True)}"


def page(*, auto_break: bool) -> FPDF:
    """A new A4 document with its first page (``auto_break``: text flows onto new pages;
    the invoice keeps one page for its QR-bill and places everything itself)."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED)
    if auto_break:
        pdf.set_auto_page_break(True, margin=15)
    else:
        pdf.set_auto_page_break(False)
    pdf.add_page()
    return pdf


def letterhead(pdf: FPDF, creditor: Any) -> None:
    """The sender (the site's creditor) at the top left."""
    c = creditor
    pdf.set_font("helvetica", size=9)
    pdf.set_xy(15, 12)
    pdf.multi_cell(90, 4.5, latin1(f"{c.name}\n{c.street} {c.house_num}\n{c.pcode} {c.city}"))


def address(pdf: FPDF, account: dict[str, Any]) -> None:
    """The recipient (a document's ``account``: name and address) in the window."""
    addr = account.get("address") or {}
    pdf.set_xy(120, 40)
    pdf.set_font("helvetica", size=10)
    pdf.multi_cell(80, 5, latin1(f"{account['name']}\n{addr.get('street', '')} "
                                 f"{addr.get('house_num', '')}\n{addr.get('pcode', '')} "
                                 f"{addr.get('city', '')}"))


def title(pdf: FPDF, text: str, y: float) -> None:
    pdf.set_xy(15, y)
    pdf.set_font("helvetica", "B", 13)
    pdf.cell(0, 7, latin1(text))


def totals(pdf: FPDF, rows: list[tuple[str, str]], y: float, bold: str) -> float:
    """Label and amount per row at the right, the row labelled ``bold`` in bold; returns
    the height below them. On a flowing document the block moves to a new page whole."""
    if pdf.auto_page_break and y + TOTALS_ROW * len(rows) > pdf.page_break_trigger:
        pdf.add_page()
        y = pdf.t_margin
    for label, amount in rows:
        pdf.set_xy(TOTALS_X, y)
        pdf.set_font("helvetica", "B" if label == bold else "", 9)
        pdf.cell(TOTALS_LABEL_W, TOTALS_ROW, latin1(label))
        pdf.cell(TOTALS_AMOUNT_W, TOTALS_ROW, latin1(amount), align="R")
        y += TOTALS_ROW
    return y
