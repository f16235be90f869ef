"""A settlement explained: the billing core's ``explain`` of the document, with each usage
line's start and end reading (value, when, who entered it or the gateway) and the deposit."""

from __future__ import annotations

from typing import Any

from sitegate.cloud.billing.explain import explain as explain_invoice
from sitegate.cloud.billing.explain import explain_text as invoice_text


def explain(view: dict[str, Any]) -> dict[str, Any]:
    doc = view["document"]
    e = explain_invoice(view)
    for item, ln in zip(e["lines"], doc["lines"], strict=True):
        if ln.get("readings"):
            item["readings"] = ln["readings"]
    e["stay"] = doc.get("stay")
    e["totals"] = {**e["totals"], "deposit": doc.get("deposit"), "refund": doc.get("refund")}
    return e


def explain_text(e: dict[str, Any]) -> str:
    out = invoice_text(e).splitlines()
    s = e.get("stay") or {}
    out.insert(1, f"  stay {s.get('reservation')} (parent {s.get('parent')}) unit "
                  f"{s.get('unit')} ({s.get('unit_type')}), category {s.get('category')}, "
                  f"arrival {s.get('arrival')}, departure {s.get('departure')}")
    k = 2
    for ln in e["lines"]:
        k += 1
        r = ln.get("readings")
        if r:
            for side in ("start", "end"):
                v = r[side]
                out.insert(k, f"      {side} reading {v['value']} at {v['at']} "
                              f"({v['source']}, {v['entered_by']})"
                              + (", marked as start" if v.get("start") else ""))
                k += 1
    t = e["totals"]
    out.append(f"  deposit {t['deposit']}  refund {t['refund']}")
    return "\n".join(out)
