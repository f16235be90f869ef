"""One meter read for commissioning: its values, and who it says it is.

The same function runs in the CLI (no daemon: the CLI's own bus clients) and in the daemon
(``commission.read`` on the control socket and from the cloud: the bus task's client,
under its lock), so a verification round reads alike either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sitegate.drivers.base import BusError, DeviceError, MeterRef, NoResponse


@dataclass
class MeterRead:
    meter_id: str
    values: dict[str, list[str]] = field(default_factory=dict)  # quantity -> [value, unit]
    serial: str | None = None  # as the meter reports it (Modbus register, M-Bus id)
    secondary: str | None = None  # M-Bus: the full secondary address it reports
    manufacturer: str | None = None
    error: str | None = None
    error_kind: str | None = None  # no_response, crc_error, collision, bus_error, ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MeterRead:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})


async def read_meter(client: Any, ref: MeterRef, protocol: str) -> MeterRead:
    """Read ``ref`` on ``client`` (a Modbus or M-Bus bus client): a field failure is kept
    in the result (what failed and its kind), never raised."""
    out = MeterRead(ref.meter_id)
    try:
        if protocol == "mbus":
            await _mbus(client, ref, out)
        else:
            await _modbus(client, ref, out)
    except NoResponse as exc:
        out.error, out.error_kind = str(exc), "no_response"
    except DeviceError as exc:
        out.error, out.error_kind = str(exc), exc.kind
    except (BusError, OSError, TimeoutError) as exc:
        out.error, out.error_kind = str(exc) or type(exc).__name__, "bus_error"
    return out


async def _modbus(client: Any, ref: MeterRef, out: MeterRead) -> None:
    from sitegate.drivers.modbus.identify import serial_number
    from sitegate.drivers.modbus.profile import load_profile

    res = await client.read(ref, datetime.now(UTC))
    out.values = {r.quantity: [str(r.value), r.unit] for r in res.readings}
    assert ref.unit is not None
    try:
        out.serial = await serial_number(client, ref.unit, load_profile(ref.profile))
    except (NoResponse, DeviceError):
        out.serial = None


async def _mbus(client: Any, ref: MeterRef, out: MeterRead) -> None:
    from sitegate.drivers.mbus.decode import DecodeError, decode_telegram
    from sitegate.drivers.mbus.profile import load_profile
    from sitegate.drivers.mbus.readings import to_result

    raws = await client.read_telegrams(ref)
    telegrams = []
    for raw in raws:
        try:
            telegrams.append(decode_telegram(raw))
        except DecodeError as exc:
            raise DeviceError(f"{ref.meter_id}: undecodable telegram ({exc})",
                              kind="garbled") from exc
    ident = next((t.identity for t in telegrams if t.identity is not None), None)
    if ident is not None:
        out.serial, out.secondary, out.manufacturer = ident.id, ident.secondary, \
            ident.manufacturer
    now = datetime.now(UTC)
    res = to_result(ref.meter_id, telegrams, load_profile(ref.profile), now, now)
    out.values = {r.quantity: [str(r.value), r.unit] for r in res.readings}
