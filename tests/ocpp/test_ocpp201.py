"""OCPP 2.0.1 over real WebSockets: boot, authorize, TransactionEvent, resends, commands."""

from __future__ import annotations

from pathlib import Path

from ocpp_helpers import central, run, sessions, until

from sitegate.ocpp_server.simulator import SimCharger201, close, connect


def test_boot_authorize_and_full_transaction(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1", version="2.0.1")
            assert isinstance(sim, SimCharger201)
            assert await sim.boot() == "Accepted"
            assert cs.core.connections["CP1"].version == "2.0.1"
            assert await sim.authorize("04:a2:3b:c1") == "Accepted"
            assert await sim.authorize("DEADBEEF") == "Blocked"
            assert await sim.authorize("99999999") == "Invalid"
            r = await sim.event("Started", "tx-abc", 1, wh=1000, badge="04A23BC1")
            assert r["id_token_info"]["status"] == "Accepted"
            await sim.event("Updated", "tx-abc", 1, wh=1500.5, trigger="MeterValuePeriodic")
            # A resend of the same seqNo (after a reconnect) changes nothing.
            await sim.event("Updated", "tx-abc", 1, wh=1600, seq_no=1)
            await sim.event("Ended", "tx-abc", 1, wh=3000, reason="EVDisconnected")
            await close(sim, task)
        [s] = sessions(buf)
        assert s["session_id"] == "CP1-tx-abc"
        assert (s["badge"], s["account"]) == ("04A23BC1", "tenant-7")
        assert (s["meter_start_wh"], s["meter_stop_wh"], s["energy_wh"]) == (
            "1000", "3000", "2000")
        assert s["stop_reason"] == "EVDisconnected"
        assert [v["value"] for v in s["meter_values"]] == ["1000", "1500.5", "3000"]
    run(scenario())


def test_quirky_transaction_event_is_acknowledged(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP2", version="2.0.1")
            await sim.boot()
            # Unknown trigger reason, kWh with multiplier, no Started ever seen.
            r = await sim.raw_call("TransactionEvent", {
                "eventType": "Ended", "timestamp": "2025-03-01T10:00:00Z",
                "triggerReason": "SomethingNew", "seqNo": 7,
                "transactionInfo": {"transactionId": "lost-1", "stoppedReason": "Other"},
                "evse": {"id": 2},
                "meterValue": [{"timestamp": "2025-03-01T10:00:00Z", "sampledValue": [
                    {"value": 12.5, "unitOfMeasure": {"unit": "kWh", "multiplier": 0}}]}]})
            assert r == {}
            await close(sim, task)
            raws = cs.core.store.raw_messages()
        [s] = sessions(buf)
        assert s["meter_stop_wh"] == "12500.0"
        assert "start_missing" in s["flags"] and "nonconformant_payload" in s["flags"]
        assert raws and raws[0]["action"] == "TransactionEvent"
    run(scenario())


def test_remote_start_stop_and_local_list(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1", version="2.0.1")
            await sim.boot()
            await until(lambda: len(sim.got.local_lists) == 1)
            assert sim.got.local_lists[0]["version"] == 1
            r = await cs.handle_command("remote-start", {"charge_point": "CP1",
                                                         "badge": "04A23BC1", "connector": 1})
            assert r["status"] == "Accepted"
            assert sim.got.remote_starts[0]["badge"] == "04A23BC1"
            await sim.event("Started", "tx-r", 1, wh=0, badge="04A23BC1",
                            trigger="RemoteStart")
            r = await cs.handle_command("remote-stop", {"charge_point": "CP1"})
            assert r["status"] == "Accepted" and sim.got.remote_stops == ["tx-r"]
            cs.update_badges({"version": 9, "badges": [{"id": "AA11", "status": "accepted",
                                                        "expires": None, "account": None}]})
            await until(lambda: len(sim.got.local_lists) == 2)
            assert sim.got.local_lists[1]["version"] == 9
            r = await cs.handle_command("get-config", {"charge_point": "CP1",
                                                       "keys": ["SmartChargingCtrlr.RateUnit"]})
            assert r["configuration"] == {"SmartChargingCtrlr.RateUnit": "A"}
            await close(sim, task)
    run(scenario())


def test_transaction_events_after_gateway_restart_end_the_right_transaction(
        tmp: Path) -> None:
    """Two 2.0.1 transactions open across a gateway restart: the Ended that arrives after
    it closes its own one; a resent event from before the restart changes nothing."""
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1", version="2.0.1")
            await sim.boot()
            await sim.event("Started", "tx-1", 1, wh=1000, badge="04A23BC1", seq_no=0)
            await sim.event("Started", "tx-2", 2, wh=7000, badge="04A23BC1", seq_no=0)
            await sim.event("Updated", "tx-1", 1, wh=1200, seq_no=1)
            await close(sim, task)
        async with central(tmp) as (cs, buf, url):
            assert cs.health()["open_sessions"] == 2
            sim, task = await connect(url, "CP1", version="2.0.1")  # no reboot, no boot
            await sim.event("Updated", "tx-1", 1, wh=9999, seq_no=1)  # resent: ignored
            await sim.event("Ended", "tx-2", 2, wh=7400, reason="EVDisconnected", seq_no=1)
            [still_open] = cs.core.store.open_txs()
            assert still_open.ext_id == "tx-1" and still_open.last_meter == 1200
            await sim.event("Ended", "tx-1", 1, wh=1500, reason="Local", seq_no=2)
            await close(sim, task)
        got = {s["session_id"]: (s["connector"], s["meter_start_wh"], s["meter_stop_wh"],
                                 s["energy_wh"], s["stop_reason"], s["flags"])
               for s in sessions(buf)}
        assert got == {"CP1-tx-2": (2, "7000", "7400", "400", "EVDisconnected", []),
                       "CP1-tx-1": (1, "1000", "1500", "500", "Local", [])}
    run(scenario())
