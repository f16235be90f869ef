"""The edge-cloud contract, shared by the gateway and the cloud.

Only plain data lives here: the reading type every driver returns, and (grown by the
sync part) topic names and payload schemas. Nothing in here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

PROTOCOL_VERSION = 1

# Quality of a reading. "good" is a value the meter vouched for; "suspect" is a value that
# was read but carries a flag (see Reading.flags); "invalid" was read but must not be billed.
GOOD = "good"
SUSPECT = "suspect"
INVALID = "invalid"
QUALITIES = (GOOD, SUSPECT, INVALID)


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one meter at one scheduled instant.

    ``ts`` is the scheduled (wall-clock aligned) timestamp the value belongs to, ``read_at``
    when the bus actually delivered it; both timezone-aware UTC. ``value`` is exact.
    ``quantity`` is an OBIS-style name for electricity (``1-0:1.8.0``) or a gateway quantity
    name for other media (see the M-Bus profiles).
    """

    meter_id: str
    ts: datetime
    quantity: str
    value: Decimal
    unit: str
    quality: str = GOOD
    read_at: datetime | None = None
    flags: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: decimals as exact strings, times as ISO 8601."""
        d: dict[str, Any] = {
            "meter_id": self.meter_id,
            "ts": self.ts.isoformat(),
            "quantity": self.quantity,
            "value": str(self.value),
            "unit": self.unit,
            "quality": self.quality,
        }
        if self.read_at is not None:
            d["read_at"] = self.read_at.isoformat()
        if self.flags:
            d["flags"] = list(self.flags)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reading:
        return cls(
            meter_id=d["meter_id"],
            ts=datetime.fromisoformat(d["ts"]),
            quantity=d["quantity"],
            value=Decimal(d["value"]),
            unit=d["unit"],
            quality=d.get("quality", GOOD),
            read_at=datetime.fromisoformat(d["read_at"]) if d.get("read_at") else None,
            flags=tuple(d.get("flags", ())),
        )


# Streams of the buffer and of the uplink; each has its own sequence numbers.
STREAM_READINGS = "readings"
STREAM_SESSIONS = "sessions"
STREAM_EVENTS = "events"
STREAMS = (STREAM_READINGS, STREAM_SESSIONS, STREAM_EVENTS)


# --- sessions stream (OCPP) ---
# One payload per session report: a running session is reported periodically (status
# "running"), and once more when it ends ("completed"). The cloud keeps the latest report
# per session_id, so resending a report is harmless. Energies are exact decimal strings, Wh.

from typing import Literal as _Literal  # noqa: E402

from pydantic import BaseModel as _BaseModel  # noqa: E402
from pydantic import ConfigDict as _ConfigDict  # noqa: E402


class SessionMeterValue(_BaseModel):
    model_config = _ConfigDict(extra="forbid")

    ts: datetime
    measurand: str  # OCPP measurand, e.g. Energy.Active.Import.Register, Power.Active.Import
    value: Decimal
    unit: str  # normalized: Wh for energy, W for power, A for current
    phase: str | None = None
    context: str | None = None


class SessionRecord(_BaseModel):
    model_config = _ConfigDict(extra="forbid")

    session_id: str  # stable across reports and restarts: "{charge_point}-{transaction}"
    charge_point: str
    connector: int
    kind: _Literal["ev", "laundry", "ebike"] = "ev"
    badge: str | None = None  # normalized badge id
    account: str | None = None
    start: datetime
    stop: datetime | None = None
    meter_start_wh: Decimal
    meter_stop_wh: Decimal | None = None  # last known value while running
    energy_wh: Decimal | None = None
    duration_s: int | None = None
    stop_reason: str | None = None
    meter_values: list[SessionMeterValue] = []
    # e.g. "closed_after_reboot", "nonconformant_payload", "meter_decreased", "no_badge"
    flags: list[str] = []
    status: _Literal["running", "completed"] = "running"

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready dict: decimals as exact strings, times in ISO 8601."""
        return self.model_dump(mode="json")
