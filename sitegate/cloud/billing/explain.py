"""``invoice explain``: each line with the meters, readings and intervals it came from."""

from __future__ import annotations

from typing import Any


def explain(view: dict[str, Any]) -> dict[str, Any]:
    doc = view["document"]
    sources = {s["id"]: s for s in doc.get("sources", [])}
    lines = []
    for ln in doc["lines"]:
        item = {k: ln.get(k) for k in ("n", "label", "billing_point", "from", "to",
                                       "quantity", "unit", "unit_price", "amount", "vat_rate")}
        if ln.get("estimated"):
            item["estimated"] = True
        for key in ("capped_from", "peak_at"):
            if ln.get(key):
                item[key] = ln[key]
        if ln.get("source"):
            item["source"] = sources[ln["source"]]
        if ln.get("sessions"):
            item["sessions"] = ln["sessions"]
        if ln.get("calibrated"):
            item["calibrated"] = ln["calibrated"]
        if ln["unit"] == "month":
            item["basis"] = f"{ln['quantity']} days of {ln['from']}..{ln['to']} (exclusive)"
        lines.append(item)
    return {"number": view["number"], "state": view["state"], "account": view["account"],
            "period": view["period"], "interim": bool(doc.get("interim")), "lines": lines,
            "totals": {k: doc[k] for k in ("net_total", "vat", "vat_total", "advances",
                                           "rounding", "total_due")}}


_METHOD = {
    "handover": "handover reading noted by hand",
    "recorded": "meter reading on the boundary",
    "nearest": "nearest meter reading",
    "interpolated": "interpolated between the meter's readings, ESTIMATED",
    "missing": "no reading on one side: consumption around it missing",
    "meter_change": "meter replacement readings",
}


def _split_text(key: str, sp: dict[str, Any]) -> str:
    """``move-out noted 2026-01-16T10:20:00, split at 2026-01-16T09:15:00Z: ...``."""
    what = "move-in" if key == "move_in" else "move-out"
    text = (f"{what} noted {sp['noted']}, split at {sp['at']}: {_METHOD[sp['method']]}"
            + (f" {sp['reading']} kWh" if sp.get("reading") else "")
            + (f" (read at {sp['reading_at']})" if sp.get("reading_at") else "")
            + f", meter {sp['meter']}")
    if sp.get("rejected"):
        text += f"; {sp['rejected']}"
    return text


def _reading_text(r: dict[str, Any] | None) -> str:
    return f"{r['value']} {r['unit']} at {r['tm']}" if r else "-"


def calibrated_text(c: dict[str, Any]) -> str:
    """One calibrated session: its signed start and stop readings and what the check
    found (``sitegate-cloud invoice explain``)."""
    verdict = "signatures verified" if c["status"] == "verified" else \
        f"signed values {c['status'].upper()}: {c.get('note', '')}"
    return (f"calibrated session {c['session']} meter {c.get('meter') or '?'}: start "
            f"{_reading_text(c.get('start'))}, stop {_reading_text(c.get('stop'))}, "
            f"billed {c['billed_wh']} Wh; {verdict}")


def explain_text(e: dict[str, Any]) -> str:
    out = [f"{'Interim invoice' if e.get('interim') else 'Invoice'} {e['number']} "
           f"({e['state']}) {e['account']} {e['period']}"]
    for ln in e["lines"]:
        out.append(f"  {ln['n']:>2}. {ln['label']}  {ln['quantity']} {ln['unit']} x "
                   f"{ln['unit_price']} = {ln['amount']}  (VAT {ln['vat_rate']} %)"
                   + ("  ESTIMATED" if ln.get("estimated") else ""))
        src = ln.get("source")
        if src:
            out.append(f"      billing point {src['billing_point']}: {src['interval_count']} "
                       f"intervals {src['intervals'][0]} .. {src['intervals'][1]}, "
                       f"{src['estimated']} estimated, {src['missing']} missing")
            for m in src["meters"]:
                out.append(f"      meter {m['meter']} ({m['gateway']}/{m['meter_id']}) "
                           f"{m['from']} .. {m['to']}: {m['readings']} readings, first "
                           f"{m['first']}, last {m['last']}"
                           + (f", start reading {m['start_reading']}" if m['start_reading']
                              else "")
                           + (f", end reading {m['end_reading']}" if m['end_reading'] else ""))
                for r in m.get("manual", ()):
                    out.append(f"        {r['source']} reading {r['value']} kWh at {r['at']}, "
                               f"entered by {r['entered_by']}"
                               + (f": {r['note']}" if r.get("note") else ""))
            for key in ("move_in", "move_out"):
                if src.get(key):
                    out.append("      " + _split_text(key, src[key]))
        if ln.get("capped_from"):
            out.append(f"      solar price {ln['capped_from']} capped at the reference price "
                       f"{ln['unit_price']}")
        if ln.get("peak_at"):
            out.append(f"      highest 15-minute average power {ln['quantity']} kW in the "
                       f"quarter hour from {ln['peak_at']}")
        if ln.get("sessions"):
            out.append(f"      sessions: {', '.join(ln['sessions'])}")
        for c in ln.get("calibrated", ()):
            out.append("      " + calibrated_text(c))
        if ln.get("basis"):
            out.append(f"      {ln['basis']}")
    t = e["totals"]
    out.append(f"  net {t['net_total']}  VAT {t['vat_total']}  advances {t['advances']}  "
               f"rounding {t['rounding']}  due {t['total_due']}")
    return "\n".join(out)
