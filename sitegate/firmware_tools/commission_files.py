"""What commissioning reads and writes on disk: the report files, and the last counter
values the buffer holds (read-only, no daemon needed)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sitegate.firmware_tools.commission import is_counter
from sitegate.firmware_tools.commission_report import html
from sitegate.firmware_tools.sitefile_edit import write_atomically

RECENT_ROWS = 200_000  # the newest readings looked at for last counter values


def write_reports(report: dict[str, Any], site_file: str, out_dir: Path,
                  started: datetime) -> tuple[list[str], str | None]:
    """``commissioning-<gateway>-<time>.html`` and ``.pdf`` in ``out_dir``; the files
    written, and why there is no PDF when there is none."""
    from sitegate.firmware_tools.commission_pdf import PdfUnavailable, write_pdf

    stem = f"commissioning-{report['gateway_id']}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    html_path = out_dir / f"{stem}.html"
    write_atomically(html_path, html(report, site_file))
    files = [str(html_path)]
    try:
        pdf_path = out_dir / f"{stem}.pdf"
        write_pdf(report, site_file, pdf_path)
        files.append(str(pdf_path))
    except PdfUnavailable as exc:
        return files, str(exc)
    return files, None


def last_counters(buffer_path: str) -> dict[str, dict[str, Decimal]]:
    """meter id -> counter quantity -> the newest value the buffer holds, from its most
    recent readings."""
    path = Path(buffer_path)
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    try:
        rows = conn.execute("SELECT payload FROM entries WHERE stream = 'readings' "
                            "ORDER BY seq DESC LIMIT ?", (RECENT_ROWS,)).fetchall()
    finally:
        conn.close()
    out: dict[str, dict[str, Decimal]] = {}
    for (payload,) in rows:
        try:
            r = json.loads(payload)
            meter, quantity = str(r["meter_id"]), str(r["quantity"])
            if not is_counter(quantity) or quantity in out.get(meter, {}):
                continue
            out.setdefault(meter, {})[quantity] = Decimal(str(r["value"]))
        except (ValueError, KeyError, TypeError, InvalidOperation):
            continue
    return out
