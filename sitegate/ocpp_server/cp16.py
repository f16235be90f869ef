"""OCPP 1.6J: one object per connected charge point, on the ``ocpp`` library's ChargePoint.

Billing messages (StartTransaction, StopTransaction, MeterValues) skip the library's schema
check: they are checked here against the same schema, but a failure only flags them and
keeps the raw text; they are always acknowledged (chargers otherwise resend forever or drop
the record).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from sitegate.ocpp_server.cpbase import ChargePointBase, now
from sitegate.ocpp_server.lenient import parse_decimal, parse_int, parse_meter_values, parse_ts
from sitegate.ocpp_server.signed import signed_values

log = structlog.get_logger(__name__)


def _id_tag_info(d: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"status": d.status}
    if d.expires is not None:
        info["expiry_date"] = d.expires.isoformat()
    return info


class CP16(ChargePointBase, ChargePoint):
    VERSION = "1.6"

    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kw: Any
                      ) -> call_result.BootNotification:
        status = await self.booted(charge_point_vendor, charge_point_model,
                                   firmware=kw.get("firmware_version"))
        return call_result.BootNotification(current_time=now(),
                                            interval=self.core.cfg.heartbeat_interval,
                                            status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification, skip_schema_validation=True)
    def on_status(self, **kw: Any) -> call_result.StatusNotification:
        payload, problems = self._lenient("StatusNotification")
        connector = parse_int(payload.get("connectorId"), problems, "connectorId")
        self.conn.connectors[connector] = str(payload.get("status"))
        if payload.get("errorCode") not in (None, "NoError"):
            self.core.event("charger_error", severity="warning", charge_point=self.id,
                            connector=connector, error=payload.get("errorCode"),
                            info=payload.get("info"))
        self.core.on_change()
        return call_result.StatusNotification()

    @on(Action.authorize, skip_schema_validation=True)
    def on_authorize(self, **kw: Any) -> call_result.Authorize:
        payload, problems = self._lenient("Authorize")
        self._keep_if("Authorize", problems)
        d = self.core.authorize(self.conn, str(payload.get("idTag", "")))
        return call_result.Authorize(id_tag_info=_id_tag_info(d))

    @on(Action.start_transaction, skip_schema_validation=True)
    def on_start(self, **kw: Any) -> call_result.StartTransaction:
        payload, problems = self._lenient("StartTransaction")
        connector = parse_int(payload.get("connectorId"), problems, "connectorId")
        ts = parse_ts(payload.get("timestamp"), problems)
        meter = parse_decimal(payload.get("meterStart"), problems, "meterStart")
        flags = []
        if meter is None:
            meter, flags = Decimal(0), ["meter_start_missing"]
        d = self.core.authorize(self.conn, str(payload.get("idTag", "")))
        if d.status != "Accepted":
            flags.append("badge_refused")
        if problems:
            flags.append("nonconformant_payload")
        with self.core.store.batch():
            self._keep_if("StartTransaction", problems)
            tx = self.core.start_tx(self.conn, connector=connector, badge=d.badge,
                                    account=d.account, ts=ts, meter_start=meter, flags=flags)
        return call_result.StartTransaction(transaction_id=tx.id, id_tag_info=_id_tag_info(d))

    @on(Action.meter_values, skip_schema_validation=True)
    def on_meter_values(self, **kw: Any) -> call_result.MeterValues:
        payload, problems = self._lenient("MeterValues")
        connector = parse_int(payload.get("connectorId"), problems, "connectorId")
        values = parse_meter_values(payload.get("meterValue"), "1.6", problems)
        signed = signed_values(payload.get("meterValue"), "1.6", problems)
        tx = None
        if payload.get("transactionId") is not None:
            tx = self.core.store.tx(parse_int(payload.get("transactionId"), problems,
                                              "transactionId"))
            if tx is None or tx.cp_id != self.id:
                problems.append("unknown transactionId")
                tx = None
        elif connector > 0:
            # Many chargers omit the transaction id: the one open session on the connector.
            open_here = [t for t in self.core.store.open_txs(self.id) if t.connector == connector]
            tx = open_here[0] if len(open_here) == 1 else None
        with self.core.store.batch():
            if tx is not None and problems:
                self.core.store.set_flags(tx.id, tx.flags + ["nonconformant_payload"])
            self._keep_if("MeterValues", problems)
            self.core.add_values(self.conn, tx, connector if tx is None else tx.connector,
                                 values)
            self.core.add_signed(self.conn, tx, signed, "MeterValues")
        return call_result.MeterValues()

    @on(Action.stop_transaction, skip_schema_validation=True)
    async def on_stop(self, **kw: Any) -> call_result.StopTransaction:
        payload, problems = self._lenient("StopTransaction")
        tx_id = parse_int(payload.get("transactionId"), problems, "transactionId", -1)
        ts = parse_ts(payload.get("timestamp"), problems)
        meter = parse_decimal(payload.get("meterStop"), problems, "meterStop")
        values = parse_meter_values(payload.get("transactionData"), "1.6", problems)
        signed = signed_values(payload.get("transactionData"), "1.6", problems)
        tx = self.core.store.tx(tx_id)
        if tx is None or tx.cp_id != self.id:
            problems.append(f"unknown transactionId {tx_id}")
        self._keep_if("StopTransaction", problems)
        result: dict[str, Any] = {}
        if payload.get("idTag"):
            d = self.core.badges.decide(str(payload["idTag"]), self.conn.config.badge_format)
            result["id_tag_info"] = _id_tag_info(d)
        if tx is None or tx.cp_id != self.id:
            self.core.event("stop_unknown_transaction", severity="warning",
                            charge_point=self.id, transaction=tx_id)
            return call_result.StopTransaction(**result)
        with self.core.store.batch():
            self.core.add_values(self.conn, tx, tx.connector, values)
            self.core.add_signed(self.conn, tx, signed, "StopTransaction")
        tx = self.core.store.tx(tx.id) or tx
        flags = ["nonconformant_payload"] if problems else []
        if meter is None:
            tx = self.core.store.tx(tx.id) or tx
            meter = tx.last_meter if tx.last_meter is not None else tx.meter_start
            flags.append("meter_stop_missing")
        await self.core.stop_tx(self.conn, tx, ts=ts, meter_stop=meter,
                                reason=str(payload.get("reason") or "Local"), flags=flags)
        return call_result.StopTransaction(**result)

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str, **kw: Any) -> call_result.FirmwareStatusNotification:
        self.core.event("firmware_status", charge_point=self.id, status=status)
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diag_status(self, status: str, **kw: Any
                       ) -> call_result.DiagnosticsStatusNotification:
        log.info("ocpp.diagnostics_status", charge_point=self.id, status=status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kw: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status="UnknownVendorId")

    # -- commands to the charger (same method names in cp201) -----------------------------------

    async def remote_start(self, badge: str, connector: int | None) -> str:
        r = await self._call(call.RemoteStartTransaction(id_tag=badge, connector_id=connector))
        return r.status

    async def remote_stop(self, tx: Any) -> str:
        r = await self._call(call.RemoteStopTransaction(transaction_id=tx.id))
        return r.status

    async def unlock(self, connector: int) -> str:
        r = await self._call(call.UnlockConnector(connector_id=connector))
        return r.status

    async def reset(self, hard: bool) -> str:
        r = await self._call(call.Reset(type="Hard" if hard else "Soft"))
        return r.status

    async def trigger(self, message: str, connector: int | None) -> str:
        r = await self._call(call.TriggerMessage(requested_message=message,
                                                 connector_id=connector))
        return r.status

    async def get_config(self, keys: list[str] | None) -> dict[str, Any]:
        r = await self._call(call.GetConfiguration(key=keys or None))
        return {"configuration": {k["key"]: k.get("value")
                                  for k in (r.configuration_key or [])},
                "unknown": list(r.unknown_key or [])}

    async def change_config(self, key: str, value: str) -> str:
        r = await self._call(call.ChangeConfiguration(key=key, value=value))
        return r.status

    async def read_capabilities(self) -> dict[str, Any]:
        """Rate unit and local list support, from the charger's own configuration."""
        cfg = (await self.get_config(None))["configuration"]
        unit = str(cfg.get("ChargingScheduleAllowedChargingRateUnit") or "Current")
        profiles = str(cfg.get("SupportedFeatureProfiles") or "")
        return {
            "rate_unit": "A" if "Current" in unit or unit.strip() == "A" else "W",
            "local_list": "LocalAuthListManagement" in profiles
            or str(cfg.get("LocalAuthListEnabled", "")).lower() == "true",
            "smart_charging": "SmartCharging" in profiles or not profiles,
        }

    async def send_local_list(self, version: int, entries: list[dict[str, Any]]) -> str:
        items = []
        for e in entries:
            info: dict[str, Any] = {"status": e["status"]}
            if e.get("expires"):
                info["expiry_date"] = e["expires"]
            items.append({"id_tag": e["id"][:20], "id_tag_info": info})
        r = await self._call(call.SendLocalList(list_version=version, update_type="Full",
                                                local_authorization_list=items))
        return r.status

    async def set_limit(self, connector: int, limit: Decimal, unit: str, tx: Any | None,
                        phases: int) -> str:
        """TxProfile for a running transaction, TxDefaultProfile otherwise (connector 0:
        every connector)."""
        purpose = "TxProfile" if tx is not None else "TxDefaultProfile"
        profile: dict[str, Any] = {
            "charging_profile_id": 1000 + connector, "stack_level": 1,
            "charging_profile_purpose": purpose, "charging_profile_kind": "Absolute",
            "charging_schedule": {
                "charging_rate_unit": unit,
                "start_schedule": now(),
                "charging_schedule_period": [{"start_period": 0, "limit": float(limit),
                                              "number_phases": phases}],
            },
        }
        if tx is not None:
            profile["transaction_id"] = tx.id
        r = await self._call(call.SetChargingProfile(connector_id=connector,
                                                     cs_charging_profiles=profile))
        return r.status

