"""``sitegate demo`` end to end (a subprocess, as an installer runs it), and the demo's
embedded MQTT 5 broker against paho, the client library both ends of sitegate use."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from datetime import date
from decimal import ROUND_HALF_UP
from decimal import Decimal as D
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sitegate.cloud.auth.tokens import verify
from sitegate.cloud.store.db import make_engine
from sitegate.common.sitefile import parse_config
from sitegate.demo.broker import Broker, matches
from sitegate.demo.site import BASE_LOAD, CHARGERS, MBUS_METERS, MODBUS_METERS
from tests.helpers.pdf import pdf_text


def test_demo_runs_meters_chargers_cloud_and_bills(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "demo", "--duration",
                          "16", "--interval", "2", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr
    out = res.stdout

    # The terminal: a line per meter, sessions starting and stopping, the cloud's count.
    shown = {ln.split()[1] for ln in out.splitlines()
             if ln[:2].isdigit() and ("kWh" in ln or "m3" in ln or " Wh" in ln)}
    assert {m for _, _, m, _ in MODBUS_METERS} <= shown
    assert {m for _, _, m, _ in MBUS_METERS} <= shown
    assert "session started" in out and "session stopped" in out
    assert "cloud: " in out and "/docs" in out
    # The API needs a token: the demo made one and says how to use it.
    token = (tmp_path / "api-token").read_text().strip()
    engine = make_engine(str(tmp_path / "cloud.db"))
    assert verify(engine, token) is not None
    engine.dispose()
    assert f"Authorization: Bearer $(cat {tmp_path / 'api-token'})" in out
    assert (tmp_path / "api-token").stat().st_mode & 0o077 == 0

    # The cloud received readings from Modbus and M-Bus meters and the sessions.
    db = sqlite3.connect(tmp_path / "cloud.db")
    by_meter = dict(db.execute(
        "SELECT meter_id, count(*) FROM readings WHERE gateway_id = 'demo-gw' "
        "GROUP BY meter_id").fetchall())
    assert by_meter.get("main", 0) > 0  # Modbus, SDM630
    assert by_meter.get("heat-apt-1", 0) > 0  # M-Bus, Kamstrup MULTICAL 601
    assert db.execute("SELECT value FROM readings WHERE meter_id = 'heat-apt-1' "
                      "AND quantity = 'heat_energy'").fetchone() is not None
    completed = [json.loads(p) for (p,) in db.execute("SELECT payload FROM sessions")]
    completed = [s for s in completed if s.get("status") == "completed"]
    assert completed, "no completed charging session reached the cloud"
    assert {s["charge_point"] for s in completed} <= {c.cp_id for c in CHARGERS} | {"WASH2"}
    # The second washing machine (RFID reader + Shelly, no OCPP) ran and ended by itself.
    washes = [s for s in completed if s["charge_point"] == "WASH2"]
    assert washes and washes[0]["kind"] == "laundry" and washes[0]["stop_reason"] == "PowerDrop"
    # Every row the gateway buffered was acknowledged before the demo stopped.
    assert "rows not acknowledged" not in out
    # ... and nothing read was left behind in the buffer (the summary points there)
    buf = sqlite3.connect(tmp_path / "buffer.db")
    streams = buf.execute("SELECT stream, last_seq, acked_upto FROM streams").fetchall()
    buf.close()
    assert streams and all(acked == last for _s, last, acked in streams), streams
    # The calibrated charger's sessions carry signed readings the gateway verified.
    signed = [s for s in completed if s["charge_point"] == "SIM0002"]
    assert signed and all(s["ocmf"]["status"] == "verified" for s in signed), signed

    _check_load_management(tmp_path, out, db)

    # Billing: invoices issued for the month, their PDFs in the demo directory.
    pdfs = sorted(tmp_path.glob("invoice-*.pdf"))
    assert pdfs, out
    assert all(p.read_bytes().startswith(b"%PDF") for p in pdfs)
    for p in pdfs:
        assert str(p) in out
    issued = db.execute("SELECT count(*) FROM billing_invoices WHERE state IN ('issued', 'settled')"
                        " AND period NOT LIKE 'expense:%'").fetchone()[0]
    assert issued == len(pdfs)
    ev = db.execute("SELECT document FROM billing_invoices WHERE account_id = 'muster'").fetchone()
    assert ev is not None and any(ln["key"].startswith("ev_") for ln in
                                  json.loads(ev[0])["lines"])
    _check_newcomer_view(tmp_path, out, db)
    _check_heat_and_water(tmp_path, out, db)



def _check_heat_and_water(workdir: Path, out: str, db: sqlite3.Connection) -> None:
    """Heating and water settled: the M-Bus meters' simulated hours since the 1st give
    every tenant a statement. Worked out by hand from the demo's fixed use a day: heat
    24 / 32 / 40 kWh at 0.12 = 2.88 / 3.84 / 4.80 a day, water 0.20 / 0.30 / 0.10 m³ at
    4.50 = 0.90 / 1.35 / 0.45 a day; advances 4.00 / 4.50 / 4.50 a day; the balance
    rounded to 0.05 (CHF)."""
    per_day = {"muster": (D("24"), D("2.88"), D("0.20"), D("0.90"), D("4.00")),
               "weber": (D("32"), D("3.84"), D("0.30"), D("1.35"), D("4.50")),
               "keller": (D("40"), D("4.80"), D("0.10"), D("0.45"), D("4.50"))}
    rows = db.execute("SELECT number, account_id, state, document FROM billing_invoices "
                      "WHERE period LIKE 'expense:%'").fetchall()
    assert {r[1] for r in rows} == set(per_day), rows
    for number, account, state, text in rows:
        doc = json.loads(text)
        first, last = (date.fromisoformat(doc[k]) for k in ("period_first", "period_last"))
        days = (last - first).days + 1
        assert first.day == 1 and 1 <= days <= 31
        heat_kwh, heat, water_m3, water, advance = per_day[account]
        lines = {ln["category"]: ln for ln in doc["lines"]}
        assert D(lines["heating"]["quantity"]) == heat_kwh * days
        assert D(lines["heating"]["amount"]) == heat * days
        assert D(lines["water"]["quantity"]) == water_m3 * days
        assert D(lines["water"]["amount"]) == water * days
        balance = (heat + water - advance) * days
        due = (balance / D("0.05")).quantize(D(1), ROUND_HALF_UP) * D("0.05")
        assert D(doc["total_due"]) == due and D(doc["advances"]) == advance * days
        assert state in ("issued", "settled")  # a refund is settled on issue
        pdf = workdir / f"statement-{doc['period_id']}-{number}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF") and str(pdf) in out
        words = pdf_text(pdf.read_bytes())  # the demo site's language: English
        assert "Heating and service charges" in words and "heat meters" in words
        assert "Wärmezähler" not in words and "Abrechnung" not in words
    assert "settled heating and water" in out and "statement-" in out.split("what is where")[1]
    # the live meters went on from the history's last register values
    for meter, qty in (("heat-apt-1", "heat_energy"), ("water-apt-2", "volume")):
        sim, live = (D(db.execute(
            "SELECT value FROM readings WHERE meter_id = ? AND quantity = ? AND epoch "
            f"{op} 'simulated-history' ORDER BY ts DESC LIMIT 1", (meter, qty)).fetchone()[0])
            for op in ("=", "!="))
        assert live == sim, (meter, sim, live)


def _check_newcomer_view(workdir: Path, out: str, db: sqlite3.Connection) -> None:
    """Issue 17: the short demo bills electricity (grid and solar, non-zero kWh) thanks to
    a month of simulated history, said to be simulated; the gateway's warnings show; no
    session of the demo's own shutdown; no identical load management lines; a closing
    summary; its hints work as typed outside the venv."""
    kwh: dict[str, D] = {}
    for (doc,) in db.execute("SELECT document FROM billing_invoices"):
        for ln in json.loads(doc)["lines"]:
            if ln["unit"] == "kWh" and ln["key"] in ("solar", "grid_peak", "grid_offpeak"):
                kwh[ln["key"]] = kwh.get(ln["key"], D(0)) + D(ln["quantity"])
    assert set(kwh) == {"solar", "grid_peak", "grid_offpeak"} and min(kwh.values()) > 0, kwh
    assert "simulated history:" in out and "SIMULATED" in out
    simulated = db.execute("SELECT count(*) FROM readings WHERE epoch = 'simulated-history' "
                           "AND flags LIKE '%\"simulated\"%'").fetchone()[0]
    live = db.execute("SELECT count(*) FROM readings WHERE epoch != 'simulated-history'"
                      ).fetchone()[0]
    assert simulated > 1000 and live > 0
    # the history explains the grid connection: no import beyond the consumers' meters
    res = subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", "bill", "--db",
                          str(workdir / "cloud.db"), "--period", out.split("billed ")[1][:7],
                          "--interim", "--json"], capture_output=True, text=True, timeout=120)
    issues = json.loads(res.stdout)["summary"]["issues"]
    assert "negative_solar" not in {i["kind"] for i in issues}, issues
    # a session the demo's stop ended while it was starting drew nothing (not billed),
    # never a Wh in no time ("implausible duration")
    assert not [i for i in issues if "implausible" in i["detail"]], issues
    # the tenants' charging and washing of the month so far: billed with the live ones
    sim: dict[tuple[str, str], list[D]] = {}
    for (payload,) in db.execute("SELECT payload FROM sessions WHERE epoch = "
                                 "'simulated-history'"):
        s = json.loads(payload)
        assert s["flags"] == ["simulated"] and s["charge_point"] != "SIM0002"
        sim.setdefault((s["account"], s["kind"]), []).append(D(s["energy_wh"]) / 1000)
    ev = sum(len(v) for (_a, k), v in sim.items() if k == "ev")
    assert f"and {ev} charging and {sum(map(len, sim.values())) - ev} laundry sessions" in out
    for account, text in db.execute("SELECT account_id, document FROM billing_invoices "
                                    "WHERE period NOT LIKE 'expense:%'"):
        lines = {ln["key"]: D(ln["quantity"]) for ln in json.loads(text)["lines"]
                 if ln["key"].startswith(("ev_", "laundry_"))}
        assert lines.get("ev_per_session", 0) >= len(sim.get((account, "ev"), []))
        assert lines.get("ev_per_kwh", 0) >= sum(sim.get((account, "ev"), []), D(0))
        assert lines.get("laundry_per_session", 0) >= len(sim.get((account, "laundry"), []))
    # the demo's M-Bus meters report status errors: said when first seen
    assert "WARNING meter_status_error" in out
    for line in out.splitlines():  # only one the stop cut off at its start takes 0 s
        assert " in 0 s" not in line or " 0 kWh in 0 s" in line, line
    plans = [json.loads(ln) for ln in (workdir / "loadmgmt.jsonl").read_text().splitlines()]
    same = [a for a, b in zip(plans, plans[1:], strict=False)
            if {**a, "ts": None} == {**b, "ts": None}]
    assert same == []
    assert "what is where" in out and "open invoice-" in out
    hint = next(ln for ln in out.splitlines() if "readings --db" in ln).strip()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir)}  # no venv on PATH
    res = subprocess.run(hint.strip(), shell=True, capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, (hint, res.stderr)


def _check_load_management(workdir: Path, out: str, db: sqlite3.Connection) -> None:
    """Three cars behind the demo's connection: the gateway held them back, never handed
    out more than the headroom, gave the others more when one left, and the simulated
    chargers and main meter followed what it decided."""
    cfg = parse_config((workdir / "site.toml").read_text(), "site.toml")
    assert cfg.ocpp is not None
    lm = cfg.ocpp.load_management
    chargers = {c.id: c for c in cfg.ocpp.charge_points}
    plans = [json.loads(ln) for ln in (workdir / "loadmgmt.jsonl").read_text().splitlines()]
    managed = [p for p in plans if p["mode"] == "managed"]
    assert managed, "load management never had main meter data"
    for p in managed:
        room = {int(k): D(v) for k, v in p["headroom"].items()}
        assert all(v <= lm.connection_limit for v in room.values())
        limits = {k.split("/")[0]: D(v) for k, v in p["limits"].items()}
        for phase in (1, 2, 3):
            used = sum((a for cp, a in limits.items() if phase in chargers[cp].phases), D(0))
            # A headroom below zero (base load over the limit) pauses everybody.
            assert used <= max(room[phase], D(0)), (p, phase)
    assert max(len(p["limits"]) for p in managed) == 3  # three cars charged at once

    # A car's limit went down while it charged (others arrived), to below what its
    # charger allows but not below the minimum; and when a car left the others got more.
    reduced = raised = False
    for before, after in zip(managed, managed[1:], strict=False):
        for key, amps in after["limits"].items():
            old, new, cp = before["limits"].get(key), D(amps), key.split("/")[0]
            if old is not None and lm.min_current <= new < min(D(old), chargers[cp].max_current):
                reduced = True
            if old is not None and new > D(old) and set(before["limits"]) - set(after["limits"]):
                raised = True
    assert reduced, managed
    assert raised, managed
    assert " A -> " in out and "load management: 3 cars share" in out

    # The simulated cars drew what the gateway allowed (the default profile before the
    # session's own), at most their own maximum: the charger reported exactly that.
    for c in CHARGERS:
        if c.kind != "ev":
            continue
        decided = {D(v) for p in plans for k, v in p["limits"].items() if k == f"{c.cp_id}/1"}
        allowed = {min(a, D(c.amps)) for a in decided | {lm.fallback_current}}
        drawn = {D(mv["value"]) for (payload,) in db.execute(
                     "SELECT payload FROM sessions WHERE payload LIKE ?", (f'%"{c.cp_id}"%',))
                 for mv in json.loads(payload)["meter_values"]
                 if mv["measurand"] == "Current.Import"}
        assert drawn and drawn <= allowed, (c.cp_id, drawn, allowed)

    # The main meter saw the cars: on L2 (no laundry there) beyond the base load alone.
    l2 = [D(v) for (v,) in db.execute("SELECT value FROM readings WHERE meter_id = 'main' "
                                      "AND quantity = '1-0:51.7.0'")]
    assert max(l2) > BASE_LOAD[1][1], l2


def test_topic_filters() -> None:
    assert matches("a/+/c", "a/b/c") and not matches("a/+/c", "a/b/d")
    assert matches("a/#", "a") and matches("a/#", "a/b/c") and not matches("a/#", "b")
    assert not matches("+/x", "$SYS/x") and not matches("#", "$SYS/x")
    assert not matches("a/b", "a/b/c") and not matches("a/b/c", "a/b")


def test_broker_shared_subscription_retained_and_will() -> None:
    """What the gateway and the ingest rely on: QoS 1 both ways, one member of a shared
    group per message, retained messages to new subscribers, the will on a lost link."""
    got: list[tuple[str, str, bytes, bool]] = []
    lock = threading.Lock()

    def client(cid: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)

        def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
            with lock:
                got.append((cid, m.topic, bytes(m.payload), bool(m.retain)))
        c.on_message = on_message
        return c

    def wait_for(n: int) -> None:
        for _ in range(100):
            with lock:
                if len(got) >= n:
                    return
            threading.Event().wait(0.05)

    def scenario(port: int) -> None:
        gw = client("gw")
        gw.will_set("s/gw/status", b"offline", qos=1, retain=True)
        gw.connect("127.0.0.1", port)
        gw.loop_start()
        gw.publish("s/gw/status", b"online", qos=1, retain=True).wait_for_publish(5)
        ingest = [client("in1"), client("in2")]
        for c in ingest:
            c.connect("127.0.0.1", port)
            c.loop_start()
            c.subscribe([("$share/ing/s/+/readings", 1)])
        watcher = client("watch")
        watcher.connect("127.0.0.1", port)
        watcher.loop_start()
        watcher.subscribe([("s/+/status", 1)])
        wait_for(1)  # the retained "online"
        threading.Event().wait(0.3)  # SUBACKs
        for i in range(6):
            gw.publish("s/gw/readings", str(i).encode(), qos=1).wait_for_publish(5)
        wait_for(7)
        gw.loop_stop()
        gw.socket().close()  # the link is lost, no DISCONNECT: the will goes out
        wait_for(8)
        for c in [*ingest, watcher]:
            c.disconnect()
            c.loop_stop()

    async def main() -> None:
        broker = Broker()
        port = await broker.start()
        try:
            await asyncio.to_thread(scenario, port)
        finally:
            await broker.stop()
        assert broker.retained["s/gw/status"].payload == b"offline"

    asyncio.run(main())
    status = [(cid, p, r) for cid, t, p, r in got if t == "s/gw/status"]
    assert status == [("watch", b"online", True), ("watch", b"offline", False)]
    readings = [(cid, p) for cid, t, p, _ in got if t == "s/gw/readings"]
    assert sorted(p for _, p in readings) == [str(i).encode() for i in range(6)]  # each once
    assert {cid for cid, _ in readings} == {"in1", "in2"}  # shared between the group
