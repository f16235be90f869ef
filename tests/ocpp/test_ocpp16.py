"""OCPP 1.6J over real WebSockets: boot, authorization, transactions, quirks, restarts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from ocpp_helpers import central, events, make_cfg, run, sessions, until

from sitegate.ocpp_server.simulator import close, connect


def test_boot_and_heartbeat_interval(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            assert await sim.boot() == "Accepted"
            assert cs.handle_command  # the service is up
            listed = (await cs.handle_command("list", {}))["charge_points"]
            assert [c["id"] for c in listed] == ["CP1"]
            assert listed[0]["vendor"] == "sitegate" and listed[0]["version"] == "1.6"
            await close(sim, task)
    run(scenario())


@pytest.mark.parametrize(("badge", "expected"), [
    ("04a23bc1", "Accepted"),          # case
    ("04:A2:3B:C1", "Accepted"),       # separators
    ("DE AD BE EF", "Blocked"),
    ("0badc0de", "Expired"),           # past expiry date
    ("11223344", "Invalid"),           # unknown
])
def test_authorize_from_local_list(tmp: Path, badge: str, expected: str) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            assert await sim.authorize(badge) == expected
            await close(sim, task)
        if expected != "Accepted":
            refused = [e for e in events(buf) if e["kind"] == "badge_refused"]
            assert refused and refused[0]["status"] == expected
    run(scenario())


def test_reversed_byte_order_charger(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "REV1")
            await sim.boot()
            # The reader of REV1 sends 04A23BC1 as C13BA204.
            assert await sim.authorize("c13ba204") == "Accepted"
            assert await sim.authorize("04a23bc1") == "Invalid"
            await close(sim, task)
    run(scenario())


def test_cloud_badge_list_survives_restart_with_cloud_offline(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            cs.update_badges({"version": 4, "badges": [
                {"id": "AABBCCDD", "status": "accepted", "expires": None, "account": "t-1"},
                {"id": "04A23BC1", "status": "blocked", "expires": None, "account": None},
            ]})
            cs.update_badges({"version": "garbage"})  # refused, list unchanged
            assert cs.health()["badge_list_version"] == 4
        # Restart without any cloud: the list comes from the state file.
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            assert await sim.authorize("aabbccdd") == "Accepted"
            assert await sim.authorize("04a23bc1") == "Blocked"  # the cloud overrides config
            await close(sim, task)
        assert any(e["kind"] == "badge_list_rejected" for e in events(buf))
    run(scenario())


def test_full_transaction_exact_session_record(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            tx, status = await sim.start_tx(1, "04A23BC1", 120_000,
                                            timestamp="2025-03-01T18:00:00Z")
            assert status == "Accepted"
            await sim.meter(1, tx, 121_500, timestamp="2025-03-01T18:15:00Z")
            await sim.meter(1, tx, 123_250, timestamp="2025-03-01T18:30:00Z")
            await sim.stop_tx(tx, 124_000, reason="EVDisconnected",
                              timestamp="2025-03-01T18:40:30Z")
            await close(sim, task)
        [s] = sessions(buf)
        assert s["session_id"] == f"CP1-{tx}"
        assert (s["charge_point"], s["connector"], s["kind"]) == ("CP1", 1, "ev")
        assert (s["badge"], s["account"]) == ("04A23BC1", "tenant-7")
        assert (s["meter_start_wh"], s["meter_stop_wh"], s["energy_wh"]) == (
            "120000", "124000", "4000")
        assert s["duration_s"] == 40 * 60 + 30
        assert s["stop_reason"] == "EVDisconnected" and s["status"] == "completed"
        assert [(v["ts"], v["value"]) for v in s["meter_values"]] == [
            ("2025-03-01T18:15:00Z", "121500"), ("2025-03-01T18:30:00Z", "123250")]
        assert s["flags"] == []
    run(scenario())


def test_relay_box_session_is_laundry(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "LAUNDRY1")
            await sim.boot()
            tx, _ = await sim.start_tx(2, "04A23BC1", 5000, timestamp="2025-03-01T08:00:00Z")
            await sim.stop_tx(tx, 5800, timestamp="2025-03-01T09:10:00Z")
            await close(sim, task)
        [s] = sessions(buf)
        assert (s["kind"], s["connector"], s["energy_wh"], s["duration_s"]) == (
            "laundry", 2, "800", 4200)
    run(scenario())


def test_resent_messages_are_idempotent(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            ts = "2025-03-01T18:00:00Z"
            tx1, _ = await sim.start_tx(1, "04A23BC1", 1000, timestamp=ts)
            await close(sim, task)
            # Reconnect and resend everything (new message ids), as chargers do.
            sim, task = await connect(url, "CP1")
            tx2, _ = await sim.start_tx(1, "04A23BC1", 1000, timestamp=ts)
            assert tx2 == tx1
            for _ in range(2):
                await sim.meter(1, tx1, 1500, timestamp="2025-03-01T18:15:00Z")
            await sim.stop_tx(tx1, 2000, timestamp="2025-03-01T18:20:00Z")
            await sim.stop_tx(tx1, 2000, timestamp="2025-03-01T18:20:00Z")
            await close(sim, task)
        [s] = sessions(buf)
        assert s["energy_wh"] == "1000" and len(s["meter_values"]) == 1
    run(scenario())


def test_quirky_payloads_are_acknowledged_and_kept(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            # Over-long idTag (21 chars), float meterStart, timestamp without zone.
            r = await sim.raw_call("StartTransaction", {
                "connectorId": 1, "idTag": "04A23BC1" + "0" * 13, "meterStart": 1000.5,
                "timestamp": "2025-03-01T18:00:00"})
            tx = r["transactionId"]
            assert r["idTagInfo"]["status"] == "Invalid"  # unknown badge, still recorded
            # kWh instead of Wh, lower-case unit, unknown measurand context, on connector 0.
            await sim.raw_call("MeterValues", {"connectorId": 0, "transactionId": tx,
                                               "meterValue": [{
                "timestamp": "2025-03-01T18:10:00Z", "sampledValue": [
                    {"value": "1.7505", "unit": "kWh", "context": "Sample.Weird"},
                    {"value": "garbage", "measurand": "Power.Active.Import"}]}]})
            # Unknown stop reason enum value; the stop is still taken.
            r = await sim.raw_call("StopTransaction", {
                "transactionId": tx, "meterStop": 2250, "timestamp": "2025-03-01T18:20:00Z",
                "reason": "CableYanked"})
            assert r == {}
            await sim.send_text("this is not json")
            await close(sim, task)
            raws = cs.core.store.raw_messages()
        [s] = sessions(buf)
        assert s["meter_start_wh"] == "1000.5" and s["meter_stop_wh"] == "2250"
        assert s["energy_wh"] == "1249.5"
        assert [v["value"] for v in s["meter_values"]] == ["1750.5000"]
        assert s["stop_reason"] == "CableYanked"
        assert "nonconformant_payload" in s["flags"] and "badge_refused" in s["flags"]
        assert {r["action"] for r in raws} == {"StartTransaction", "MeterValues",
                                               "StopTransaction", "?"}
        start_raw = next(r for r in raws if r["action"] == "StartTransaction")
        assert json.loads(start_raw["raw"])[3]["meterStart"] == 1000.5
    run(scenario())


def test_transaction_spans_gateway_restart(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            tx, _ = await sim.start_tx(1, "04A23BC1", 7000, timestamp="2025-03-01T18:00:00Z")
            await sim.meter(1, tx, 7400, timestamp="2025-03-01T18:15:00Z")
            await close(sim, task)
        async with central(tmp) as (cs, buf, url):
            assert cs.health()["open_sessions"] == 1
            # The charger comes back without rebooting and finishes its transaction.
            sim, task = await connect(url, "CP1")
            await sim.meter(1, tx, 7900, timestamp="2025-03-01T18:30:00Z")
            await sim.stop_tx(tx, 8100, timestamp="2025-03-01T18:35:00Z")
            await close(sim, task)
            [s] = sessions(buf)
            assert s["session_id"] == f"CP1-{tx}" and s["energy_wh"] == "1100"
            assert len(s["meter_values"]) == 2
            # New transactions get new ids after the restart (never reused).
            sim, task = await connect(url, "CP1")
            tx2, _ = await sim.start_tx(1, "04A23BC1", 8100)
            assert tx2 > tx
            await close(sim, task)
    run(scenario())


def test_stop_after_gateway_restart_closes_the_right_transaction(tmp: Path) -> None:
    """Three sessions on two chargers are open when the gateway restarts; each stop that
    comes after the restart closes its own session and no other, and a charger cannot
    close another charger's session with its transaction id."""
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            cp1, t1 = await connect(url, "CP1")
            cp2, t2 = await connect(url, "CP2")
            await cp1.boot()
            await cp2.boot()
            a, _ = await cp1.start_tx(1, "04A23BC1", 1000, timestamp="2025-03-01T18:00:00Z")
            b, _ = await cp1.start_tx(2, "04A23BC1", 5000, timestamp="2025-03-01T18:01:00Z")
            c, _ = await cp2.start_tx(1, "04A23BC1", 300, timestamp="2025-03-01T18:02:00Z")
            await cp1.meter(2, b, 5200, timestamp="2025-03-01T18:10:00Z")
            await close(cp1, t1)
            await close(cp2, t2)
        assert sessions(buf) == []
        async with central(tmp) as (cs, buf, url):
            assert cs.health()["open_sessions"] == 3
            # The chargers come back without rebooting (no BootNotification).
            cp1, t1 = await connect(url, "CP1")
            cp2, t2 = await connect(url, "CP2")
            await cp1.meter(2, b, 5450, timestamp="2025-03-01T18:20:00Z")
            await cp1.meter(1, None, 1700, timestamp="2025-03-01T18:20:00Z")  # no tx id
            await cp1.stop_tx(b, 5600, timestamp="2025-03-01T18:30:00Z")
            await cp2.stop_tx(a, 99_999, timestamp="2025-03-01T18:31:00Z")  # not CP2's
            assert sorted(t.id for t in cs.core.store.open_txs()) == sorted([a, c])
            await cp2.stop_tx(c, 750, timestamp="2025-03-01T18:40:00Z")
            await cp1.stop_tx(a, 1900, timestamp="2025-03-01T18:50:00Z")
            await close(cp1, t1)
            await close(cp2, t2)
        got = {s["session_id"]: s for s in sessions(buf)}
        assert list(got) == [f"CP1-{b}", f"CP2-{c}", f"CP1-{a}"]
        summary = {k: (s["connector"], s["meter_start_wh"], s["meter_stop_wh"], s["energy_wh"],
                       s["start"], s["stop"], [v["value"] for v in s["meter_values"]])
                   for k, s in got.items()}
        assert summary == {
            f"CP1-{a}": (1, "1000", "1900", "900", "2025-03-01T18:00:00Z",
                         "2025-03-01T18:50:00Z", ["1700"]),
            f"CP1-{b}": (2, "5000", "5600", "600", "2025-03-01T18:01:00Z",
                         "2025-03-01T18:30:00Z", ["5200", "5450"]),
            f"CP2-{c}": (1, "300", "750", "450", "2025-03-01T18:02:00Z",
                         "2025-03-01T18:40:00Z", []),
        }
        assert all(s["flags"] == [] for s in got.values())
        refused = [e for e in events(buf) if e["kind"] == "stop_unknown_transaction"]
        assert [(e["charge_point"], e["transaction"]) for e in refused] == [("CP2", a)]
    run(scenario())


def test_cloud_badge_expiry_is_enforced_with_cloud_offline(tmp: Path) -> None:
    """Expiry dates from the cloud's list are checked locally: after a restart with no
    cloud, an expired badge is refused (its session still recorded, flagged) and a valid one
    is accepted with its expiry date; the list pushed to the charger carries the dates."""
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            cs.update_badges({"version": 5, "badges": [
                {"id": "A1B2C3D4", "status": "accepted", "expires": "2020-06-01T00:00:00Z",
                 "account": "t-1"},
                {"id": "B1B2C3D4", "status": "accepted", "expires": "2999-01-01T00:00:00Z",
                 "account": "t-2"},
            ]})
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            r = await sim.raw_call("Authorize", {"idTag": "a1b2c3d4"})
            assert r["idTagInfo"] == {"status": "Expired",
                                      "expiryDate": "2020-06-01T00:00:00+00:00"}
            r = await sim.raw_call("Authorize", {"idTag": "b1:b2:c3:d4"})
            assert r["idTagInfo"] == {"status": "Accepted",
                                      "expiryDate": "2999-01-01T00:00:00+00:00"}
            tx, status = await sim.start_tx(1, "A1B2C3D4", 10,
                                            timestamp="2025-03-01T18:00:00Z")
            assert status == "Expired"
            await sim.stop_tx(tx, 30, timestamp="2025-03-01T18:05:00Z")
            await until(lambda: len(sim.got.local_lists) == 1)
            pushed = {e["id_tag"]: e["id_tag_info"] for e in sim.got.local_lists[0]["list"]}
            assert sim.got.local_lists[0]["version"] == 5
            assert pushed["A1B2C3D4"] == {"status": "Expired",  # whatever its clock says
                                          "expiry_date": "2020-06-01T00:00:00+00:00"}
            assert pushed["B1B2C3D4"] == {"status": "Accepted",
                                          "expiry_date": "2999-01-01T00:00:00+00:00"}
            await close(sim, task)
        [s] = sessions(buf)
        assert (s["badge"], s["account"], s["energy_wh"]) == ("A1B2C3D4", "t-1", "20")
        assert s["flags"] == ["badge_refused"]
        refused = [e for e in events(buf) if e["kind"] == "badge_refused"]
        assert {e["status"] for e in refused} == {"Expired"}
    run(scenario())


def test_charger_reboot_closes_open_transaction_flagged_and_late_stop_corrects(
        tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            tx, _ = await sim.start_tx(1, "04A23BC1", 100, timestamp="2025-03-01T18:00:00Z")
            await sim.meter(1, tx, 900, timestamp="2025-03-01T18:30:00Z")
            await close(sim, task)
            sim, task = await connect(url, "CP1")
            await sim.boot()  # rebooted: its transaction is gone
            await until(lambda: len(sessions(buf)) == 1)
            [s] = sessions(buf)
            assert s["status"] == "completed" and s["meter_stop_wh"] == "900"
            assert s["flags"] == ["closed_after_reboot"] and s["stop_reason"] == "Reboot"
            assert s["stop"] == "2025-03-01T18:30:00Z"
            # A session started right after the boot is a new one and stays open.
            tx_new, _ = await sim.start_tx(1, "04A23BC1", 1000)
            await until(lambda: cs.core.connections["CP1"].rate_unit is not None)  # after boot
            assert [t.id for t in cs.core.store.open_txs()] == [tx_new]
            # Its offline queue then delivers the real stop: the session is corrected.
            await sim.stop_tx(tx, 950, reason="PowerLoss", timestamp="2025-03-01T18:31:00Z")
            await close(sim, task)
        last = sessions(buf)[-1]
        assert last["session_id"] == s["session_id"]
        assert (last["meter_stop_wh"], last["stop_reason"]) == ("950", "PowerLoss")
        assert last["flags"] == ["stop_after_auto_close"]
        assert any(e["kind"] == "tx_closed_after_reboot" for e in events(buf))
    run(scenario())


def test_completed_report_lost_by_crash_is_resent_on_start(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            tx, _ = await sim.start_tx(1, "04A23BC1", 0)
            await sim.stop_tx(tx, 10)
            await close(sim, task)
        # Simulate a crash between closing and reporting: forget the report.
        db = sqlite3.connect(tmp / "ocpp.db")
        db.execute("UPDATE transactions SET reported=NULL")
        db.commit()
        db.close()
        async with central(tmp) as (cs, buf, url):
            pass
        assert [s["status"] for s in sessions(buf)] == ["completed", "completed"]
    run(scenario())


def test_no_subprotocol_is_accepted_as_16(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP2", offer_subprotocol=False)
            assert await sim.boot() == "Accepted"
            assert cs.core.connections["CP2"].version == "1.6"
            await close(sim, task)
    run(scenario())


def test_unknown_charger_rejected_or_pending(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            with pytest.raises(Exception, match="404"):
                await connect(url, "STRANGER")
        cfg = make_cfg(security={"unknown_chargers": "pending"})
        async with central(tmp, cfg) as (cs, buf, url):
            sim, task = await connect(url, "STRANGER")
            assert await sim.boot() == "Pending"
            await close(sim, task)
        assert any(e["kind"] == "unknown_charger" for e in events(buf))
    run(scenario())


def test_running_sessions_reported_periodically(tmp: Path) -> None:
    async def scenario() -> None:
        cfg = make_cfg(session_report_interval=0.2)
        async with central(tmp, cfg) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            await sim.boot()
            tx, _ = await sim.start_tx(1, "04A23BC1", 100, timestamp="2025-03-01T18:00:00Z")
            await sim.meter(1, tx, 350, timestamp="2025-03-01T18:05:00Z")
            await until(lambda: any(s["meter_stop_wh"] == "350" for s in sessions(buf)))
            running = [s for s in sessions(buf) if s["meter_stop_wh"] == "350"][0]
            assert running["status"] == "running" and running["stop"] is None
            assert (running["energy_wh"], running["duration_s"]) == ("250", 300)
            await close(sim, task)
    run(scenario())


def test_firmware_status_messages_are_answered_and_logged(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim16, t16 = await connect(url, "CP1")
            sim201, t201 = await connect(url, "CP2", version="2.0.1")
            await sim16.boot()
            await sim201.boot()
            assert await sim16.raw_call("FirmwareStatusNotification",
                                        {"status": "Downloading"}) == {}
            assert await sim16.raw_call("DiagnosticsStatusNotification",
                                        {"status": "Uploaded"}) == {}
            assert await sim201.raw_call("FirmwareStatusNotification",
                                         {"status": "Installed", "requestId": 3}) == {}
            r = await sim16.raw_call("DataTransfer", {"vendorId": "com.example"})
            assert r == {"status": "UnknownVendorId"}
            await close(sim16, t16)
            await close(sim201, t201)
        firmware = sorted((e["charge_point"], e["status"]) for e in events(buf)
                          if e["kind"] == "firmware_status")
        assert firmware == [("CP1", "Downloading"), ("CP2", "Installed")]
    run(scenario())


def test_ebike_relay_box_session(tmp: Path) -> None:
    async def scenario() -> None:
        cfg = make_cfg(charge_points=[{"id": "LOCKERS", "kind": "ebike"}])
        async with central(tmp, cfg) as (cs, buf, url):
            sim, task = await connect(url, "LOCKERS")
            await sim.boot()
            tx, _ = await sim.start_tx(4, "04A23BC1", 0, timestamp="2025-03-01T07:00:00Z")
            await sim.stop_tx(tx, 410, timestamp="2025-03-01T10:30:00Z")
            await close(sim, task)
        [s] = sessions(buf)
        assert (s["kind"], s["connector"], s["account"], s["energy_wh"], s["duration_s"]) == (
            "ebike", 4, "tenant-7", "410", 3 * 3600 + 1800)
    run(scenario())
