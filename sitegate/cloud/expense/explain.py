"""``expense explain``: each line of a statement with how it was calculated (the key, the
category's total and units, the occupant's share), the categories' totals and the
balance after advances."""

from __future__ import annotations

from typing import Any

KEYS = ("n", "label", "billing_point", "from", "to", "quantity", "unit", "unit_price",
        "amount", "vat_rate", "basis", "estimated", "vacant", "by_area_instead_of")


def explain(view: dict[str, Any]) -> dict[str, Any]:
    doc = view["document"]
    return {"number": view["number"], "state": view["state"], "account": view["account"],
            "period": doc["period_id"], "from": doc["period_first"], "to": doc["period_last"],
            "profile": doc["profile"], "categories": doc.get("categories", []),
            "lines": [{k: ln[k] for k in KEYS if ln.get(k) is not None} for ln in doc["lines"]],
            "advances_paid": doc["advances_paid"], "notes": doc.get("notes", []),
            "totals": {k: doc[k] for k in ("net_total", "vat", "vat_total", "gross_total",
                                           "advances", "rounding", "total_due")},
            "balance": view["balance"], "refund": doc["refund"]}


def explain_text(e: dict[str, Any]) -> str:
    out = [f"Statement {e['number']} ({e['state']}) {e['account']} period {e['period']} "
           f"({e['from']} .. {e['to']}, {e['profile']})"]
    for c in e["categories"]:
        out.append(f"  {c['label']}: {c['total']} by {c['key']}"
                   + (f", {c['consumption_share']} % by consumption" if "consumption_share" in c
                      else ""))
        for p in c["parts"]:
            out.append(f"      {p['part']}: {p['total']} over {p['key_total']} {p['unit']} "
                       f"({p['key']})"
                       + (f", by area instead of {p['by_area_instead_of']}"
                          if p.get("by_area_instead_of") else ""))
        if c.get("combined"):
            cb = c["combined"]
            out.append(f"      hot water's share {cb['share']} %: {cb['q_kwh']} of "
                       f"{cb['fuel_kwh']} kWh ({cb['method']}) = {cb['amount']}")
    for ln in e["lines"]:
        flags = "".join(f"  {f.upper()}" for f in ("estimated", "vacant") if ln.get(f))
        out.append(f"  {ln['n']:>2}. {ln['label']} ({ln['billing_point']}) {ln['from']}.."
                   f"{ln['to']}: {ln['quantity']} {ln['unit']} = {ln['amount']}{flags}")
        out.append(f"      {ln['basis']}")
    for n in e["notes"]:
        out.append(f"  note: {n}")
    t = e["totals"]
    out.append(f"  total {t['gross_total']}  advances {t['advances']}  rounding "
               f"{t['rounding']}  {'refund' if e['refund'] else 'due'} {t['total_due']}")
    return "\n".join(out)
