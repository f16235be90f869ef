"""What the demo prints: one line per meter as its values arrive, charging sessions as the
gateway opens and closes them, the gateway's warnings as they happen (a clock without NTP,
a meter reporting an error, the gateway's warning and alarm events), and how much of it the
cloud has (no log lines)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from sitegate.gateway.daemon import Daemon

# The register shown per meter, first found wins: (quantity, label).
SHOWN = (("1-0:1.8.0", "import"), ("heat_energy", "heat"), ("energy", "heat"),
         ("volume", "water"))
SECOND = (("1-0:16.7.0", "power"), ("power", "power"), ("volume_flow", "flow"))


# What a flag on the readings means, said once when it first shows.
GATEWAY_FLAGS = {
    "clock_unsynced": "the gateway's clock is not synchronized (no NTP here), so every "
                      "reading is stored as suspect; on a real box: timedatectl set-ntp true",
}
METER_FLAGS = {
    "meter_status_error": "the meter reports an error in its status byte (check its display; "
                          "the readings are kept, marked suspect)",
    "error_state_value": "the meter reports an error state value",
}


def _pick(values: dict[str, Any], choices: tuple[tuple[str, str], ...]) -> tuple[str, Any]:
    for quantity, label in choices:
        if quantity in values:
            return label, values[quantity]
    return "", None


def _plain(value: Any) -> str:
    """Decimals as digits (a float32 register decodes to 2.357E+4 otherwise)."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


class Printer:
    def __init__(self, daemon: Daemon, cloud_counts: Callable[[], Awaitable[tuple[int, int]]],
                 out: Callable[[str], None], producers: frozenset[str] = frozenset()) -> None:
        self.daemon = daemon
        self.producers = producers  # meters shown by their export register (PV)
        self.cloud_counts = cloud_counts
        self.out = out
        self._shown: dict[str, str] = {}  # meter -> ts of the reading last printed
        self._open: dict[int, str] = {}  # transactions seen running: id -> charge point
        self._cloud: tuple[int, int, int] | None = None
        self._warned: set[tuple[str, str]] = set()  # (meter or "", flag) already said
        self._events_seen = 0  # the gateway's events stream, up to this sequence

    async def tick(self) -> None:
        self._meters()
        self._warnings()
        self._sessions()
        await self._cloud_line()

    def _warnings(self) -> None:
        """Each reading flag and each warning or alarm event, once, when it first shows."""
        for (meter, _q), r in sorted(self.daemon.latest.items()):
            for flag in r.flags:
                key = ("" if flag in GATEWAY_FLAGS else meter, flag)
                if key in self._warned:
                    continue
                self._warned.add(key)
                what = GATEWAY_FLAGS.get(flag) or METER_FLAGS.get(flag) or (
                    "the meter reports a problem in its status (check its display); its "
                    f"readings are kept, marked {r.quality}" if flag.startswith("meter_")
                    else f"its readings carry the flag {flag} (quality {r.quality})")
                who = "gateway" if not key[0] else meter
                self.out(f"{r.ts:%H:%M:%S}  {who:<11} WARNING {flag}: {what}")
        buffer = self.daemon.buffer
        if buffer is None:
            return
        for entry in buffer.pending("events", limit=100, after=self._events_seen):
            self._events_seen = entry.seq
            event = json.loads(entry.payload)
            if event.get("severity") not in ("warning", "alarm", "error"):
                continue
            text = event.get("message") or event.get("error") or ""
            self.out(f"{str(event.get('ts', ''))[11:19]:<8}  "
                     f"{event.get('meter_id') or 'gateway':<11} "
                     f"{str(event['severity']).upper()} {event.get('kind')}: {text}")

    def _meters(self) -> None:
        rows: dict[str, dict[str, Any]] = {}
        for (meter, quantity), r in list(self.daemon.latest.items()):
            rows.setdefault(meter, {})[quantity] = r
        for meter in sorted(rows):
            label, main = _pick(rows[meter], SHOWN)
            if meter in self.producers and "1-0:2.8.0" in rows[meter]:
                label, main = "export", rows[meter]["1-0:2.8.0"]
            if main is None or self._shown.get(meter) == main.ts.isoformat():
                continue
            self._shown[meter] = main.ts.isoformat()
            label2, second = _pick(rows[meter], SECOND)
            extra = (f"   {label2} {_plain(second.value):>10} {second.unit}"
                     if second is not None else "")
            value, unit = (main.value / 1000, "kWh") if main.unit == "Wh" else (main.value,
                                                                                   main.unit)
            self.out(f"{main.ts:%H:%M:%S}  {meter:<11} {label:<6} {_plain(value):>12} "
                     f"{unit:<4}{extra}")

    def _sessions(self) -> None:
        ocpp = self.daemon.ocpp
        if ocpp is None:
            return
        store = ocpp.core.store
        for tx in store.open_txs():
            if tx.id not in self._open:
                self._open[tx.id] = tx.cp_id
                self.out(f"{tx.start_ts.astimezone():%H:%M:%S}  {tx.cp_id:<11} {tx.kind} "
                         f"session started, badge {tx.badge}")
        for tx in store.recent_txs(100):
            if tx.id in self._open and tx.status == "completed" and tx.stop_ts is not None:
                del self._open[tx.id]
                kwh = ((tx.meter_stop or tx.meter_start) - tx.meter_start) / 1000
                secs = int((tx.stop_ts - tx.start_ts).total_seconds())
                self.out(f"{tx.stop_ts.astimezone():%H:%M:%S}  {tx.cp_id:<11} {tx.kind} "
                         f"session stopped: {kwh} kWh in {secs} s ({tx.stop_reason})")

    async def _cloud_line(self) -> None:
        if self.daemon.buffer is None:
            return
        readings, sessions = await self.cloud_counts()
        stats = self.daemon.buffer.stats()["streams"]
        backlog = sum(s["unacknowledged"] for s in stats.values())
        now = (readings, sessions, backlog)
        if now != self._cloud:
            self._cloud = now
            self.out(f"          cloud: {readings} readings, {sessions} sessions; "
                     f"backlog {backlog}")
