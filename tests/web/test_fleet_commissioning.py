"""Issue 19's gap: the fleet page shows each gateway's commissioning state (the newest
report's verdict and date, linking the report), from the reports ingest keeps of the
gateways' ``commissioning`` events (``store/commissioning.record``, as ingest calls it)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from console_kit import MODEL, SITE, Browserless, Console

from sitegate.cloud.billing import ops
from sitegate.cloud.store import commissioning
from sitegate.cloud.store.tables import gateways


def _cells(html: str, row: str) -> list[str]:
    m = re.search(row + r"(.*?)</tr>", html, re.S)
    assert m, row
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>",
                                                                m[1], re.S)]


def _report(gateway: str, seq: int, finished: str, verdict: str,
            problems: list[dict[str, str]]) -> dict[str, object]:
    """An event row as ingest hands it over, its payload the gateway's summary."""
    summary = {"gateway_id": gateway, "started": finished[:14] + "00:00Z", "finished": finished,
               "verdict": verdict, "meters": 3, "meter_verdicts": {"ok": 2, verdict: 1},
               "chargers": 1, "chargers_connected": 1, "problems": problems,
               "problems_left_out": 0}
    return {"gateway_id": gateway, "epoch": "20260101000000-ab12", "seq": seq,
            "kind": "commissioning", "payload": json.dumps({"summary": summary}),
            "received_at": datetime(2026, 2, 1, 12, tzinfo=UTC)}


def test_fleet_shows_the_newest_commissioning_verdict_and_links_the_report(
        console: Console) -> None:
    now = datetime(2026, 2, 1, 12, tzinfo=UTC)
    wiring = {"check": "phase_order", "level": "fail", "subject": "m3",
              "detail": "L2 and L3 swapped", "fix": "swap the voltage taps"}
    late = {"check": "serial", "level": "warn", "subject": "m2",
            "detail": "serial not configured", "fix": ""}
    with console.engine.begin() as conn:
        for g in ("gw-1", "gw-2", "gw-stranger"):
            conn.execute(gateways.insert().values(gateway_id=g, first_seen=now,
                                                  last_seen=now, online=True))
        # gw-1: failed on 30 January, fixed and checked again on 31 January (sent last,
        # but the earlier round arriving later must not hide the newer one either)
        assert commissioning.record(conn, [
            _report("gw-1", 7, "2026-01-31T09:15:00Z", "warn", [late]),
            _report("gw-1", 5, "2026-01-30T16:40:00Z", "fail", [wiring]),
            _report("gw-stranger", 1, "2026-01-29T08:00:00Z", "ok", [])]) == 3
    # gw-2 belongs to the site too (named in its model), but sent no report yet
    ops.import_site(console.engine, {**MODEL, "site": {**MODEL["site"],
                                                        "gateways": ["gw-1", "gw-2"]}})
    console.user("op@example.ch", "operator")
    console.user("inst@example.ch", "installer")
    console.user("other@example.ch", "operator", site="elsewhere")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    _, html, _ = b.get("/web/fleet")
    row = _cells(html, r'<tr data-gateway="gw-1"[^>]*>')
    assert row[9] == "WARN · 2026-01-31 09:15 UTC"
    assert _cells(html, r'<tr data-gateway="gw-2"[^>]*>')[9] == "no report"
    assert "gw-stranger" not in html
    link = re.search(r'<tr data-gateway="gw-1".*?href="(/web/commissioning/\d+)"', html,
                     re.S)[1]
    assert link in b.get("/web/fleet/rows")[1]  # the refreshed rows keep it
    code, page, _ = b.get(link)
    assert code == 200 and "WARN" in page and f"/web/sites/{SITE}" in page
    assert _cells(page, r'<table id="problems">.*?<tbody>') == [
        "m2", "serial", "WARN", "serial not configured", "–"]
    assert "Started" in page and "2026-01-31 09:00 UTC" in page
    # the older, failed round is still there under its own id
    newest, older = (r["id"] for r in commissioning.reports(console.engine, SITE)["reports"])
    assert link == f"/web/commissioning/{newest}"
    code, page, _ = b.get(f"/web/commissioning/{older}")
    assert code == 200 and "L2 and L3 swapped" in page and "swap the voltage taps" in page
    assert b.get("/web/commissioning/99999")[0] == 404
    # a stranger gateway's report: only an operator of every site may read it
    stranger = commissioning.reports(console.engine, "x", "gw-stranger")["reports"][0]["id"]
    assert b.get(f"/web/commissioning/{stranger}")[0] == 403
    # the installer sees it (technical), an operator of another site does not
    i = Browserless(console.url)
    assert i.login("inst@example.ch") == 303
    assert "WARN" in i.get("/web/fleet")[1] and i.get(link)[0] == 200
    o = Browserless(console.url)
    assert o.login("other@example.ch") == 303
    assert o.get(link)[0] == 403 and "gw-1" not in o.get("/web/fleet")[1]
