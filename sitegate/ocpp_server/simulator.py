"""Simulated charge points (EV chargers and RFID relay boxes) on the ``ocpp`` library's
charge-point side, OCPP 1.6J and 2.0.1, for tests, the benchmark and the demo.

    sim, task = await connect("ws://127.0.0.1:9000/ocpp/", "CP1", version="1.6")
    await sim.boot(); tx = await sim.start_tx(1, "04A23BC1", 1000); ...; await close(sim, task)

``run_fleet(url, n, ...)`` runs N chargers in-process, each with one session sending
MeterValues periodically, and returns the round-trip latency of every MeterValues call.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import websockets
from ocpp.messages import Call, MessageType
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16Client
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as CP201Client
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Received:
    """What the central system asked of this simulated charger."""

    profiles: list[dict[str, Any]] = field(default_factory=list)
    local_lists: list[dict[str, Any]] = field(default_factory=list)
    remote_starts: list[dict[str, Any]] = field(default_factory=list)
    remote_stops: list[Any] = field(default_factory=list)
    other: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class _RawCalls:
    """Sending hand-written payloads (quirks) that the library would refuse to build."""

    _connection: Any
    _call_lock: asyncio.Lock
    _response_timeout: float

    async def raw_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        msg = Call(unique_id=str(uuid.uuid4()), action=action, payload=payload)
        async with self._call_lock:
            await self._connection.send(msg.to_json())
            response = await self._get_specific_response(  # type: ignore[attr-defined]
                msg.unique_id, self._response_timeout)
        if response.message_type_id == MessageType.CallError:
            raise RuntimeError(f"CallError {response.error_code}: {response.error_description}")
        return response.payload

    async def send_text(self, text: str) -> None:
        await self._connection.send(text)


def _signed16(context: str, value: str) -> dict[str, Any]:
    return {"value": value, "context": context, "format": "SignedData",
            "measurand": "Energy.Active.Import.Register", "unit": "Wh"}


class SimCharger16(_RawCalls, CP16Client):
    def __init__(self, cp_id: str, ws: Any, *, rate_unit: str = "Current",
                 local_list: bool = True, profile_answer: str = "Accepted") -> None:
        super().__init__(cp_id, ws, response_timeout=15)
        self.got = Received()
        self.profile_answer = profile_answer
        self.on_profile: Callable[[], None] | None = None  # called on each accepted profile
        profiles = "Core,SmartCharging,RemoteTrigger" + (
            ",LocalAuthListManagement" if local_list else "")
        self.configuration: dict[str, str] = {
            "ChargingScheduleAllowedChargingRateUnit": rate_unit,
            "SupportedFeatureProfiles": profiles,
            "LocalAuthListEnabled": "true" if local_list else "false",
            "HeartbeatInterval": "300",
        }

    # -- the charger's own actions --------------------------------------------------------------

    async def boot(self) -> str:
        r = await self.call(call16.BootNotification(charge_point_model="SimBox",
                                                    charge_point_vendor="sitegate"))
        return r.status

    async def authorize(self, badge: str) -> str:
        return (await self.call(call16.Authorize(id_tag=badge))).id_tag_info["status"]

    async def status(self, connector: int, status: str) -> None:
        await self.call(call16.StatusNotification(connector_id=connector, error_code="NoError",
                                                  status=status))

    async def start_tx(self, connector: int, badge: str, meter_start: int,
                    timestamp: str | None = None) -> tuple[int, str]:
        r = await self.call(call16.StartTransaction(connector_id=connector, id_tag=badge,
                                                    meter_start=meter_start,
                                                    timestamp=timestamp or now()))
        return r.transaction_id, r.id_tag_info["status"]

    async def meter(self, connector: int, tx: int | None, wh: Decimal | int,
                    amps: Decimal | None = None, timestamp: str | None = None) -> None:
        sampled: list[dict[str, Any]] = [{"value": str(wh), "measurand":
                                          "Energy.Active.Import.Register", "unit": "Wh"}]
        if amps is not None:
            sampled += [{"value": str(amps), "measurand": "Current.Import", "unit": "A",
                         "phase": p} for p in ("L1", "L2", "L3")]
        await self.call(call16.MeterValues(
            connector_id=connector, transaction_id=tx,
            meter_value=[{"timestamp": timestamp or now(), "sampled_value": sampled}]))

    async def signed_meter(self, connector: int, tx: int | None, context: str, value: str,
                           timestamp: str | None = None) -> None:
        """A signed value (OCMF record, or the 2.0.1 structure as JSON text) as a 1.6
        charger sends it: a sampled value of format SignedData in MeterValues."""
        await self.call(call16.MeterValues(
            connector_id=connector, transaction_id=tx,
            meter_value=[{"timestamp": timestamp or now(), "sampled_value": [_signed16(
                context, value)]}]))

    async def stop_tx(self, tx: int, meter_stop: int, reason: str = "Local",
                   badge: str | None = None, timestamp: str | None = None,
                   signed: list[tuple[str, str]] | None = None) -> None:
        """``signed``: (context, value) pairs sent in ``transactionData`` (the placement of
        begin and end records together at the stop)."""
        data = None
        if signed:
            data = [{"timestamp": timestamp or now(), "sampled_value": [
                _signed16(ctx, value) for ctx, value in signed]}]
        await self.call(call16.StopTransaction(meter_stop=meter_stop,
                                               timestamp=timestamp or now(),
                                               transaction_id=tx, reason=reason, id_tag=badge,
                                               transaction_data=data))

    # -- answering the central system -------------------------------------------------------------

    @on(Action16.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **kw: Any
                             ) -> result16.GetConfiguration:
        keys = key or list(self.configuration)
        known = [{"key": k, "readonly": False, "value": self.configuration[k]}
                 for k in keys if k in self.configuration]
        unknown = [k for k in keys if k not in self.configuration]
        return result16.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action16.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> result16.ChangeConfiguration:
        if key not in self.configuration:
            return result16.ChangeConfiguration(status="NotSupported")
        self.configuration[key] = value
        return result16.ChangeConfiguration(status="Accepted")

    @on(Action16.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]
                                ) -> result16.SetChargingProfile:
        self.got.profiles.append({"connector": connector_id, **cs_charging_profiles})
        if self.profile_answer == "Accepted" and self.on_profile is not None:
            self.on_profile()
        return result16.SetChargingProfile(status=self.profile_answer)

    def limit(self, connector: int, tx: int | None) -> Decimal | None:
        """The current (A per phase) the accepted profiles allow now, as a charger applies
        them: the newest TxProfile of the running transaction, else the newest
        TxDefaultProfile of the connector or of the whole charger (0); None without one.
        Only the first period counts (our central system sends one)."""
        if self.profile_answer != "Accepted":
            return None
        tx_profiles, defaults = [], []
        for p in self.got.profiles:
            purpose = p.get("charging_profile_purpose")
            if purpose == "TxProfile" and tx is not None and p.get("transaction_id") == tx \
                    and p["connector"] == connector:
                tx_profiles.append(p)
            elif purpose == "TxDefaultProfile" and p["connector"] in (0, connector):
                defaults.append(p)
        chosen = (tx_profiles or defaults or [None])[-1]
        if chosen is None:
            return None
        schedule = chosen["charging_schedule"]
        period = schedule["charging_schedule_period"][0]
        value = Decimal(str(period["limit"]))
        if schedule["charging_rate_unit"] == "W":  # W over all phases at 230 V
            value /= 230 * int(period.get("number_phases") or 3)
        return value

    @on(Action16.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str, **kw: Any
                           ) -> result16.SendLocalList:
        self.got.local_lists.append({"version": list_version,
                                     "list": kw.get("local_authorization_list", [])})
        return result16.SendLocalList(status="Accepted")

    @on(Action16.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **kw: Any) -> result16.RemoteStartTransaction:
        self.got.remote_starts.append({"badge": id_tag, **kw})
        return result16.RemoteStartTransaction(status="Accepted")

    @on(Action16.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> result16.RemoteStopTransaction:
        self.got.remote_stops.append(transaction_id)
        return result16.RemoteStopTransaction(status="Accepted")

    @on(Action16.unlock_connector)
    def on_unlock(self, connector_id: int) -> result16.UnlockConnector:
        self.got.other.append(("unlock", {"connector": connector_id}))
        return result16.UnlockConnector(status="Unlocked")

    @on(Action16.reset)
    def on_reset(self, type: str) -> result16.Reset:
        self.got.other.append(("reset", {"type": type}))
        return result16.Reset(status="Accepted")

    @on(Action16.trigger_message)
    def on_trigger(self, requested_message: str, **kw: Any) -> result16.TriggerMessage:
        self.got.other.append(("trigger", {"message": requested_message}))
        return result16.TriggerMessage(status="Accepted")


class SimCharger201(_RawCalls, CP201Client):
    def __init__(self, cp_id: str, ws: Any, *, rate_unit: str = "A",
                 local_list: bool = True, profile_answer: str = "Accepted") -> None:
        super().__init__(cp_id, ws, response_timeout=15)
        self.got = Received()
        self.profile_answer = profile_answer
        self._seq = itertools.count(0)
        self.variables = {"SmartChargingCtrlr.RateUnit": rate_unit,
                          "LocalAuthListCtrlr.Enabled": "true" if local_list else "false"}

    async def boot(self) -> str:
        r = await self.call(call201.BootNotification(
            charging_station={"model": "SimBox", "vendor_name": "sitegate"},
            reason="PowerUp"))
        return r.status

    async def authorize(self, badge: str) -> str:
        r = await self.call(call201.Authorize(id_token={"id_token": badge,
                                                        "type": "ISO14443"}))
        return r.id_token_info["status"]

    async def event(self, event_type: str, tx_id: str, evse: int, *, wh: Decimal | int | None
                    = None, badge: str | None = None, reason: str | None = None,
                    trigger: str = "Authorized", seq_no: int | None = None,
                    signed: str | None = None, public_key: str | None = None,
                    timestamp: str | None = None) -> dict[str, Any]:
        """``signed``: an OCMF record sent as the energy value's signedMeterValue (base64,
        encodingMethod OCMF), with ``public_key`` (hex DER, sent base64) if given."""
        info: dict[str, Any] = {"transaction_id": tx_id}
        if reason:
            info["stopped_reason"] = reason
        kw: dict[str, Any] = {}
        if wh is not None:
            sv: dict[str, Any] = {"value": wh if isinstance(wh, int) else float(wh),
                                  "measurand": "Energy.Active.Import.Register",
                                  "unit_of_measure": {"unit": "Wh"}}
            if signed is not None:
                sv["context"] = {"Started": "Transaction.Begin",
                                 "Ended": "Transaction.End"}.get(event_type, "Sample.Periodic")
                sv["signed_meter_value"] = {
                    "signed_meter_data": base64.b64encode(signed.encode()).decode(),
                    "signing_method": "", "encoding_method": "OCMF",
                    "public_key": base64.b64encode(bytes.fromhex(public_key)).decode()
                    if public_key else ""}
            kw["meter_value"] = [{"timestamp": timestamp or now(), "sampled_value": [sv]}]
        if badge:
            kw["id_token"] = {"id_token": badge, "type": "ISO14443"}
        r = await self.call(call201.TransactionEvent(
            event_type=event_type, timestamp=timestamp or now(), trigger_reason=trigger,
            seq_no=next(self._seq) if seq_no is None else seq_no, transaction_info=info,
            evse={"id": evse, "connector_id": 1}, **kw))
        return {"id_token_info": r.id_token_info}

    @on(Action201.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]]
                         ) -> result201.GetVariables:
        out = []
        for item in get_variable_data:
            key = f"{item['component']['name']}.{item['variable']['name']}"
            if key in self.variables:
                out.append({"attribute_status": "Accepted", "attribute_value":
                            self.variables[key], **item})
            else:
                out.append({"attribute_status": "UnknownVariable", **item})
        return result201.GetVariables(get_variable_result=out)

    @on(Action201.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any]
                                ) -> result201.SetChargingProfile:
        self.got.profiles.append({"connector": evse_id, **charging_profile})
        return result201.SetChargingProfile(status=self.profile_answer)

    @on(Action201.send_local_list)
    def on_send_local_list(self, version_number: int, update_type: str, **kw: Any
                           ) -> result201.SendLocalList:
        self.got.local_lists.append({"version": version_number,
                                     "list": kw.get("local_authorization_list", [])})
        return result201.SendLocalList(status="Accepted")

    @on(Action201.request_start_transaction)
    def on_remote_start(self, id_token: dict[str, Any], remote_start_id: int, **kw: Any
                        ) -> result201.RequestStartTransaction:
        self.got.remote_starts.append({"badge": id_token["id_token"], **kw})
        return result201.RequestStartTransaction(status="Accepted")

    @on(Action201.request_stop_transaction)
    def on_remote_stop(self, transaction_id: str) -> result201.RequestStopTransaction:
        self.got.remote_stops.append(transaction_id)
        return result201.RequestStopTransaction(status="Accepted")


async def connect(base_url: str, cp_id: str, *, version: str = "1.6", password: str | None
                  = None, ssl_context: ssl.SSLContext | None = None,
                  offer_subprotocol: bool = True, **options: Any
                  ) -> tuple[SimCharger16 | SimCharger201, asyncio.Task[Any]]:
    """Open the WebSocket, start answering the central system; returns (charger, task)."""
    headers = {}
    if password is not None:
        token = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    proto = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    ws = await websockets.connect(
        base_url.rstrip("/") + "/" + cp_id,
        subprotocols=[proto] if offer_subprotocol else None,  # type: ignore[list-item]
        additional_headers=headers, ssl=ssl_context, open_timeout=10)
    cls = SimCharger16 if version == "1.6" else SimCharger201
    sim = cls(cp_id, ws, **options)
    task = asyncio.create_task(sim.start())
    return sim, task


async def close(sim: Any, task: asyncio.Task[Any]) -> None:
    await sim._connection.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def run_fleet(base_url: str, n: int, *, interval: float = 10.0, duration: float = 60.0,
                    version: str = "1.6", badge: str = "04A23BC1", prefix: str = "SIM",
                    ) -> list[tuple[float, float]]:
    """N chargers, each with one session sending MeterValues every ``interval`` seconds
    (start times spread over the interval); returns (seconds since the fleet started,
    round trip in s) of every MeterValues."""
    latencies: list[tuple[float, float]] = []
    t_start = time.perf_counter()

    async def one(i: int) -> None:
        sim, task = await connect(base_url, f"{prefix}{i:04d}", version=version)
        try:
            await sim.boot()
            await asyncio.sleep(interval * i / n)
            if isinstance(sim, SimCharger16):
                tx, _ = await sim.start_tx(1, badge, 0)
            else:
                tx_ext = f"{prefix}{i}-tx"
                await sim.event("Started", tx_ext, 1, wh=0, badge=badge)
            wh = 0
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline:
                wh += 30
                t0 = time.perf_counter()
                if isinstance(sim, SimCharger16):
                    await sim.meter(1, tx, wh, Decimal("16.0"))
                else:
                    await sim.event("Updated", tx_ext, 1, wh=wh, trigger="MeterValuePeriodic")
                latencies.append((t0 - t_start, time.perf_counter() - t0))
                await asyncio.sleep(interval)
        finally:
            await close(sim, task)

    await asyncio.gather(*(one(i) for i in range(n)))
    return latencies
