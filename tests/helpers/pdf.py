"""What a PDF says, as a reader sees it: the text of every page (pdfium's text layer)."""

from __future__ import annotations

import pypdfium2


def pdf_text(pdf: bytes) -> str:
    doc = pypdfium2.PdfDocument(pdf)
    try:
        return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()
