"""The commissioning report as PDF, with fpdf2.

fpdf2 is pure Python and already the cloud's PDF library; on the gateway it is the
optional extra ``sitegate[report]`` (a box that never hands over a report does not carry
it), imported only here and only when a PDF is written: the dependency rules allow it in
this one module (``tests/common/test_dependency_rules.py``). Its built-in Helvetica covers
Latin-1, which holds every label and value of a report in the languages we serve; other
characters are replaced, never an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sitegate.firmware_tools.commission_report import (
    VERDICT_TEXT,
    charger_state,
    key_values,
    problems,
    title,
)


class PdfUnavailable(RuntimeError):
    pass


def _t(text: object) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


def write_pdf(report: dict[str, Any], site_file: str, path: Path) -> None:
    try:
        from fpdf import FPDF
        from fpdf.enums import XPos, YPos
    except ImportError as exc:
        raise PdfUnavailable("the PDF report needs fpdf2: pip install 'sitegate[report]' "
                             "(the HTML report is written all the same)") from exc
    pdf = FPDF(orientation="L", format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.set_title(_t(title(report)))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _t(title(report)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    c = report["counts"]
    for line in (f"Gateway {report['gateway_id']}, site file {site_file}",
                 f"Verification round {report['started']} to {report['finished']}",
                 f"Verdict: {VERDICT_TEXT[report['verdict']]} ({c['ok']} meter(s) OK, "
                 f"{c['warn']} to check, {c['fail']} failed)"):
        pdf.cell(0, 6, _t(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, _t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", "", 8)

    def table(header: list[str], rows: list[list[str]], widths: tuple[int, ...]) -> None:
        with pdf.table(col_widths=widths, text_align="LEFT", line_height=4) as t:
            r = t.row()
            for h in header:
                r.cell(_t(h))
            for row in rows:
                r = t.row()
                for cell in row:
                    r.cell(_t(cell))

    heading("Problems and what to do")
    found = problems(report)
    if found:
        table(["", "where", "check", "found", "fix"],
              [[VERDICT_TEXT[f["level"]], f["subject"], f["check"], f["detail"], f["fix"]]
               for f in found], (8, 12, 12, 34, 34))
    else:
        pdf.cell(0, 6, "none", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    heading("Meters")
    rows = []
    for m in report["meters"]:
        serial = m["serial_configured"] or "-"
        if m["serial_reported"] and m["serial_reported"] != m["serial_configured"]:
            serial += f" / meter: {m['serial_reported']}"
        values = "\n".join(f"{q} = {v} {u}" for q, v, u in key_values(m["values"]))
        rows.append([m["id"], m["billing_point"] or "", f"{m['bus']}, {m['address']}",
                     m["profile"], serial, values or (m["error"] or ""),
                     VERDICT_TEXT[m["verdict"]]])
    table(["meter", "billing point", "bus, address", "profile", "serial number", "values",
           "verdict"], rows, (14, 18, 16, 16, 14, 30, 8))
    heading("Chargers")
    if report["chargers"]:
        table(["charger", "state", "model", "verdict"],
              [[ch["id"], charger_state(ch),
                f"{ch.get('vendor') or ''} {ch.get('model') or ''}".strip(),
                VERDICT_TEXT[ch["verdict"]]] for ch in report["chargers"]], (20, 20, 40, 10))
    else:
        pdf.cell(0, 6, "none configured", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.output(str(path))
