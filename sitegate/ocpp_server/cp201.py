"""OCPP 2.0.1: Boot, Heartbeat, StatusNotification, Authorize, TransactionEvent, MeterValues,
and the commands the central system sends. The EVSE id plays the role of the 1.6 connector.

TransactionEvent and MeterValues are billing messages: lenient and always acknowledged,
like their 1.6 counterparts (see cp16).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from sitegate.ocpp_server.cpbase import ChargePointBase, now
from sitegate.ocpp_server.lenient import (
    energy_register,
    parse_int,
    parse_meter_values,
    parse_ts,
)
from sitegate.ocpp_server.signed import signed_values

_remote_ids = itertools.count(1)


def _token_info(d: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"status": d.status}
    if d.expires is not None:
        info["cache_expiry_date_time"] = d.expires.isoformat()
    return info


class CP201(ChargePointBase, ChargePoint):
    VERSION = "2.0.1"

    @on(Action.boot_notification)
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **kw: Any
                      ) -> call_result.BootNotification:
        status = await self.booted(charging_station.get("vendor_name"),
                                   charging_station.get("model"), reason=reason)
        return call_result.BootNotification(
            current_time=now(), interval=self.core.cfg.heartbeat_interval, status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification, skip_schema_validation=True)
    def on_status(self, **kw: Any) -> call_result.StatusNotification:
        payload, problems = self._lenient("StatusNotification")
        evse = parse_int(payload.get("evseId"), problems, "evseId")
        self.conn.connectors[evse] = str(payload.get("connectorStatus"))
        self.core.on_change()
        return call_result.StatusNotification()

    @on(Action.authorize, skip_schema_validation=True)
    def on_authorize(self, **kw: Any) -> call_result.Authorize:
        payload, problems = self._lenient("Authorize")
        self._keep_if("Authorize", problems)
        token = (payload.get("idToken") or {}).get("idToken", "")
        d = self.core.authorize(self.conn, str(token))
        return call_result.Authorize(id_token_info=_token_info(d))

    @on(Action.meter_values, skip_schema_validation=True)
    def on_meter_values(self, **kw: Any) -> call_result.MeterValues:
        payload, problems = self._lenient("MeterValues")
        evse = parse_int(payload.get("evseId"), problems, "evseId")
        values = parse_meter_values(payload.get("meterValue"), "2.0.1", problems)
        signed = signed_values(payload.get("meterValue"), "2.0.1", problems)
        open_here = [t for t in self.core.store.open_txs(self.id) if t.connector == evse]
        tx = open_here[0] if evse > 0 and len(open_here) == 1 else None
        with self.core.store.batch():
            self._keep_if("MeterValues", problems)
            self.core.add_values(self.conn, tx, evse, values)
            self.core.add_signed(self.conn, tx, signed, "MeterValues")
        return call_result.MeterValues()

    @on(Action.transaction_event, skip_schema_validation=True)
    async def on_transaction_event(self, **kw: Any) -> call_result.TransactionEvent:
        payload, problems = self._lenient("TransactionEvent")
        info = payload.get("transactionInfo") or {}
        ext_id = str(info.get("transactionId") or "")
        event = str(payload.get("eventType") or "")
        seq_no = parse_int(payload.get("seqNo"), problems, "seqNo", -1)
        ts = parse_ts(payload.get("timestamp"), problems)
        evse = parse_int((payload.get("evse") or {}).get("id", 0), problems, "evse.id")
        values = parse_meter_values(payload.get("meterValue"), "2.0.1", problems)
        signed = signed_values(payload.get("meterValue"), "2.0.1", problems)
        token = (payload.get("idToken") or {}).get("idToken")
        result: dict[str, Any] = {}
        d = None
        if token:
            d = self.core.authorize(self.conn, str(token))
            result["id_token_info"] = _token_info(d)
        if not ext_id:
            problems.append("transactionInfo.transactionId missing")
            self._keep_if("TransactionEvent", problems)
            return call_result.TransactionEvent(**result)
        self._keep_if("TransactionEvent", problems)
        if self.core.store.event_seen(self.id, ext_id, seq_no):
            return call_result.TransactionEvent(**result)  # resent after a reconnect
        flags = ["nonconformant_payload"] if problems else []
        if payload.get("offline"):
            flags.append("offline")
        with self.core.store.batch():  # one fsync for the whole event
            tx = self.core.store.tx_by_ext(self.id, ext_id)
            if tx is None:
                # Started, or an Updated/Ended whose Started we never got: open it from what
                # we have (the first energy register is the best meter start we know).
                reg = energy_register(values)
                if event != "Started":
                    flags.append("start_missing")
                if d is not None and d.status != "Accepted":
                    flags.append("badge_refused")
                tx = self.core.start_tx(
                    self.conn, connector=evse or 1, badge=d.badge if d else None,
                    account=d.account if d else None, ts=ts,
                    meter_start=reg[0] if reg else Decimal(0), ext_id=ext_id, flags=flags)
            elif d is not None and tx.badge is None:
                # 2.0.1 often authorizes after plugging in: the badge comes in an Updated.
                self.core.store.set_badge(tx.id, d.badge, d.account)
            self.core.add_values(self.conn, tx, tx.connector, values)
            self.core.add_signed(self.conn, tx, signed, "TransactionEvent")
            tx = self.core.store.tx(tx.id) or tx
            if event != "Ended":
                if flags and tx.flags != sorted(set(tx.flags + flags)):
                    self.core.store.set_flags(tx.id, tx.flags + flags)
                self.core.store.mark_event(self.id, ext_id, seq_no)
        if event == "Ended":
            tx = self.core.store.tx(tx.id) or tx
            reg = energy_register(values)
            meter = reg[0] if reg else (tx.last_meter if tx.last_meter is not None
                                        else tx.meter_start)
            if reg is None:
                flags.append("meter_stop_missing")
            await self.core.stop_tx(self.conn, tx, ts=ts, meter_stop=meter,
                                    reason=str(info.get("stoppedReason") or "Local"),
                                    flags=flags)
            self.core.store.mark_event(self.id, ext_id, seq_no)
        return call_result.TransactionEvent(**result)

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str, **kw: Any
                           ) -> call_result.FirmwareStatusNotification:
        self.core.event("firmware_status", charge_point=self.id, status=status)
        return call_result.FirmwareStatusNotification()

    @on(Action.notify_report)
    def on_notify_report(self, **kw: Any) -> call_result.NotifyReport:
        return call_result.NotifyReport()

    # -- commands to the charger (same method names as cp16) ------------------------------------

    async def remote_start(self, badge: str, connector: int | None) -> str:
        r = await self._call(call.RequestStartTransaction(
            id_token={"id_token": badge, "type": "ISO14443"},
            remote_start_id=next(_remote_ids), evse_id=connector))
        return r.status

    async def remote_stop(self, tx: Any) -> str:
        r = await self._call(call.RequestStopTransaction(transaction_id=tx.ext_id))
        return r.status

    async def unlock(self, connector: int) -> str:
        r = await self._call(call.UnlockConnector(evse_id=connector, connector_id=1))
        return r.status

    async def reset(self, hard: bool) -> str:
        r = await self._call(call.Reset(type="Immediate" if hard else "OnIdle"))
        return r.status

    async def trigger(self, message: str, connector: int | None) -> str:
        evse = {"id": connector} if connector else None
        r = await self._call(call.TriggerMessage(requested_message=message, evse=evse))
        return r.status

    async def get_config(self, keys: list[str] | None) -> dict[str, Any]:
        """Keys are ``Component.Variable`` (e.g. ``SmartChargingCtrlr.RateUnit``)."""
        wanted = keys or ["SmartChargingCtrlr.RateUnit", "LocalAuthListCtrlr.Enabled",
                          "OCPPCommCtrlr.HeartbeatInterval"]
        data = []
        for k in wanted:
            comp, _, var = k.partition(".")
            data.append({"component": {"name": comp}, "variable": {"name": var}})
        r = await self._call(call.GetVariables(get_variable_data=data))
        config, unknown = {}, []
        for item in r.get_variable_result:
            key = f"{item['component']['name']}.{item['variable']['name']}"
            if item["attribute_status"] == "Accepted":
                config[key] = item.get("attribute_value")
            else:
                unknown.append(key)
        return {"configuration": config, "unknown": unknown}

    async def change_config(self, key: str, value: str) -> str:
        comp, _, var = key.partition(".")
        r = await self._call(call.SetVariables(set_variable_data=[{
            "attribute_value": value, "component": {"name": comp}, "variable": {"name": var}}]))
        return r.set_variable_result[0]["attribute_status"]

    async def read_capabilities(self) -> dict[str, Any]:
        cfg = (await self.get_config(["SmartChargingCtrlr.RateUnit",
                                      "LocalAuthListCtrlr.Enabled"]))["configuration"]
        unit = str(cfg.get("SmartChargingCtrlr.RateUnit") or "A")
        return {"rate_unit": "A" if "A" in unit.split(",") else "W",
                "local_list": str(cfg.get("LocalAuthListCtrlr.Enabled", "")).lower() == "true"}

    async def send_local_list(self, version: int, entries: list[dict[str, Any]]) -> str:
        items = []
        for e in entries:
            info: dict[str, Any] = {"status": e["status"]}
            if e.get("expires"):
                info["cache_expiry_date_time"] = e["expires"]
            items.append({"id_token": {"id_token": e["id"][:36], "type": "ISO14443"},
                          "id_token_info": info})
        r = await self._call(call.SendLocalList(version_number=version, update_type="Full",
                                                local_authorization_list=items))
        return r.status

    async def set_limit(self, connector: int, limit: Decimal, unit: str, tx: Any | None,
                        phases: int) -> str:
        profile: dict[str, Any] = {
            "id": 1000 + connector, "stack_level": 1,
            "charging_profile_purpose": "TxProfile" if tx is not None else "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{
                "id": 1, "charging_rate_unit": unit, "start_schedule": now(),
                "charging_schedule_period": [{"start_period": 0, "limit": float(limit),
                                              "number_phases": phases}],
            }],
        }
        if tx is not None:
            profile["transaction_id"] = tx.ext_id
        r = await self._call(call.SetChargingProfile(evse_id=connector,
                                                     charging_profile=profile))
        return r.status
