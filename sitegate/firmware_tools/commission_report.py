"""The commissioning report the installer hands over: HTML (no library, no internet: one
self-contained file with its style inline) and PDF (``commission_pdf``).

Both show the same rows from ``Report.to_dict()``: the site, every meter and charger with
its address, serial numbers, values and verdict, and every finding with its fix.
"""

from __future__ import annotations

from html import escape
from typing import Any

VERDICT_TEXT = {"ok": "OK", "warn": "CHECK", "fail": "FAILED"}
# The values a reader of the report looks for first, in this order; the rest follow.
KEY_QUANTITIES = ("1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0", "1-0:32.7.0", "1-0:52.7.0",
                  "1-0:72.7.0", "1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0", "heat_energy",
                  "volume")
MAX_VALUES = 8  # per meter in the report's table (all are in the JSON)


def key_values(values: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    first = [q for q in KEY_QUANTITIES if q in values]
    rest = sorted(q for q in values if q not in first)
    return [(q, values[q][0], values[q][1]) for q in (first + rest)[:MAX_VALUES]]


def charger_state(c: dict[str, Any]) -> str:
    if c.get("connected") is None:
        return "not checked"
    return "connected" if c["connected"] else "not connected"


def title(report: dict[str, Any]) -> str:
    return f"Commissioning report {report['gateway_id']}"


def html(report: dict[str, Any], site_file: str) -> str:
    e = escape
    verdict = report["verdict"]
    counts = report["counts"]
    rows = []
    for m in report["meters"]:
        values = "<br>".join(f"{e(q)} = {e(v)} {e(u)}" for q, v, u in key_values(m["values"]))
        serial = e(m["serial_configured"] or "-")
        if m["serial_reported"] and m["serial_reported"] != m["serial_configured"]:
            serial += f" / meter: {e(m['serial_reported'])}"
        rows.append(
            f"<tr class='{m['verdict']}'><td>{e(m['id'])}</td><td>{e(m['billing_point'] or '')}"
            f"</td><td>{e(m['bus'])}, {e(m['address'])}</td><td>{e(m['profile'])}</td>"
            f"<td>{serial}</td><td>{values or e(m['error'] or '')}</td>"
            f"<td>{VERDICT_TEXT[m['verdict']]}</td></tr>")
    chargers = "".join(
        f"<tr class='{c['verdict']}'><td>{e(c['id'])}</td><td>{charger_state(c)}</td>"
        f"<td>{e(str(c.get('vendor') or ''))} {e(str(c.get('model') or ''))}</td>"
        f"<td>{VERDICT_TEXT[c['verdict']]}</td></tr>" for c in report["chargers"])
    findings = "".join(
        f"<tr class='{f['level']}'><td>{VERDICT_TEXT[f['level']]}</td><td>{e(f['subject'])}"
        f"</td><td>{e(f['check'])}</td><td>{e(f['detail'])}</td><td>{e(f['fix'])}</td></tr>"
        for f in problems(report))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title(report))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }}
th {{ background: #eee; }}
tr.fail td:last-child, .verdict.fail {{ color: #b00; font-weight: bold; }}
tr.warn td:last-child, .verdict.warn {{ color: #a60; font-weight: bold; }}
tr.ok td:last-child, .verdict.ok {{ color: #070; }}
</style></head><body>
<h1>{e(title(report))}</h1>
<p>Gateway <b>{e(report['gateway_id'])}</b>, site file {e(site_file)}<br>
Verification round {e(report['started'])} to {e(report['finished'])}<br>
Verdict: <span class="verdict {verdict}">{VERDICT_TEXT[verdict]}</span>
({counts['ok']} meter(s) OK, {counts['warn']} to check, {counts['fail']} failed)</p>
<h2>Problems and what to do</h2>
<table><tr><th></th><th>where</th><th>check</th><th>found</th><th>fix</th></tr>
{findings or "<tr><td colspan='5'>none</td></tr>"}</table>
<h2>Meters</h2>
<table><tr><th>meter</th><th>billing point</th><th>bus, address</th><th>profile</th>
<th>serial number</th><th>values</th><th>verdict</th></tr>
{''.join(rows)}</table>
<h2>Chargers</h2>
<table><tr><th>charger</th><th>state</th><th>model</th><th>verdict</th></tr>
{chargers or "<tr><td colspan='4'>none configured</td></tr>"}</table>
</body></html>
"""


def problems(report: dict[str, Any]) -> list[dict[str, str]]:
    """Every finding that is not OK, failures first."""
    found = list(report["site"]) + [f for m in report["meters"] for f in m["findings"]]
    order = {"fail": 0, "warn": 1, "ok": 2}
    return sorted((f for f in found if f["level"] != "ok"), key=lambda f: order[f["level"]])
