"""The technician's commands the daemon runs for the cloud (signed ``command``) and for the
local CLI (control socket): ``doctor``, ``logs``, ``modbus.scan``, ``mbus.scan``, and
commissioning's ``commission.read`` and ``commission.report``.

The daemon owns the buses, so a scan or a commissioning read runs on the bus task's own
client under its lock: a Modbus scan takes it per unit (polls go on between units), an
M-Bus scan for the whole scan (a secondary selection must not be interleaved). Long scans
report progress (``sync.client.command_progress``: at most one message every
``PROGRESS_EVERY`` seconds). Every argument from the cloud is bounded and checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from sitegate.gateway.buses import make_client, meter_ref

log = structlog.get_logger(__name__)

PROGRESS_EVERY = 2.0  # seconds between progress messages of one command
MAX_LOG_LINES = 500  # per remote `logs` (the result is one MQTT message)
MAX_SUMMARY_BYTES = 256 * 1024
MAX_SINCE = timedelta(days=31)


class CommandArgsError(ValueError):
    pass


def _progress_sink() -> Callable[[dict[str, Any]], None]:
    """Progress of the command being run for the cloud, rate-limited; nothing locally."""
    from sitegate.sync.client import command_progress

    sink = command_progress.get()
    if sink is None:
        return lambda _info: None
    last = [0.0]

    def send(info: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY or info.get("done") == info.get("total"):
            last[0] = now
            sink(info)

    return send


def _str(args: dict[str, Any], key: str, default: str | None = None,
         limit: int = 64) -> str | None:
    value = args.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise CommandArgsError(f"{key}: a string of at most {limit} characters")
    return value


def _range(spec: Any, lo: int, hi: int, key: str) -> list[int]:
    if not isinstance(spec, str) or len(spec) > 16:
        raise CommandArgsError(f"{key}: a range like {lo}-{hi}")
    a, _, b = spec.partition("-")
    try:
        out = list(range(int(a), int(b or a) + 1))
    except ValueError:
        raise CommandArgsError(f"{key}: a range like {lo}-{hi}") from None
    if not out or out[0] < lo or out[-1] > hi:
        raise CommandArgsError(f"{key}: within {lo}-{hi}")
    return out


class RemoteCommands:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon

    def names(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {"doctor": self.doctor, "logs": self.logs, "modbus.scan": self.modbus_scan,
                "mbus.scan": self.mbus_scan, "commission.read": self.commission_read,
                "commission.report": self.commission_report}

    # -- doctor and logs -------------------------------------------------------------------

    async def doctor(self, _args: dict[str, Any]) -> dict[str, Any]:
        from sitegate.firmware_tools.doctor import failed, run_checks
        from sitegate.gateway.clock import clock_state

        health = self.d.health(await asyncio.to_thread(self.d.buffer.stats))
        checks = await asyncio.to_thread(run_checks, self.d.config, clock_state,
                                         lambda: health, (Exception,))
        return {"ok": not failed(checks), "checks": [c.to_dict() for c in checks]}

    async def logs(self, args: dict[str, Any]) -> dict[str, Any]:
        from sitegate.firmware_tools import logs
        from sitegate.firmware_tools.identity import state_dir

        try:
            since = logs.parse_since(_str(args, "since", "1h") or "1h")
        except ValueError as exc:
            raise CommandArgsError(str(exc)) from None
        since = max(since, datetime.now(UTC) - MAX_SINCE)
        limit = args.get("limit", 200)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LOG_LINES:
            raise CommandArgsError(f"limit: 1-{MAX_LOG_LINES}")
        flt = logs.Filter(since, _str(args, "meter"), _str(args, "bus"),
                          _str(args, "charger"))
        return await asyncio.to_thread(logs.read, flt,
                                       state_dir(self.d.config.storage.path), limit)

    # -- scans -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _bus(self, name: str | None, protocol: str
                   ) -> AsyncIterator[tuple[Any, asyncio.Lock]]:
        """(client, lock) of a configured bus: the running bus task's, or one of our own."""
        if name is None:
            raise CommandArgsError("bus: the name of a configured bus")
        try:
            bus = self.d.config.bus(name)
        except KeyError:
            raise CommandArgsError(f"bus {name!r} is not in the site file; known: "
                                   f"{', '.join(b.name for b in self.d.config.buses)}") from None
        if bus.protocol != protocol:
            raise CommandArgsError(f"bus {name!r} is {bus.protocol}, not {protocol}")
        worker = self.d.workers.get(name)
        if worker is not None:
            yield worker.client, worker.bus_lock
            return
        client = make_client(bus)
        try:
            yield client, asyncio.Lock()
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    async def modbus_scan(self, args: dict[str, Any]) -> dict[str, Any]:
        from sitegate.drivers.modbus.scan import scan_units

        units = _range(args.get("units", "1-247"), 1, 247, "units")
        identify = bool(args.get("identify", True))
        progress = _progress_sink()
        found: list[dict[str, Any]] = []
        async with self._bus(_str(args, "bus"), "modbus") as (client, lock):
            rows = await scan_units(
                client, units, identify=identify, lock=lambda: lock,
                found=found.append,
                progress=lambda i, n, what: progress({"done": i, "total": n, "step": what,
                                                      "found": len(found)}))
        progress({"done": len(units), "total": len(units), "found": len(rows)})
        return {"bus": args.get("bus"), "units_scanned": len(units), "found": rows}

    async def mbus_scan(self, args: dict[str, Any]) -> dict[str, Any]:
        from sitegate.drivers.mbus.scan import primary_scan, secondary_search

        secondary = bool(args.get("secondary", False))
        addresses = _range(args.get("addresses", "0-250"), 0, 250, "addresses")
        progress = _progress_sink()
        found: list[Any] = []
        async with self._bus(_str(args, "bus"), "mbus") as (client, lock):
            async with lock:  # a selection must not be interleaved with polls
                if secondary:
                    result = await secondary_search(
                        client, found=found.append,
                        progress=lambda m: progress({"step": m[:8], "found": len(found)}))
                else:
                    result = await primary_scan(
                        client, range(addresses[0], addresses[-1] + 1), found=found.append,
                        progress=lambda a: progress({"done": a - addresses[0],
                                                     "total": len(addresses),
                                                     "step": f"address {a}",
                                                     "found": len(found)}))
        progress({"done": 1, "total": 1, "found": len(result)})
        return {"bus": args.get("bus"), "found": [f.to_dict() for f in result]}

    # -- commissioning ---------------------------------------------------------------------

    async def commission_read(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every named meter read on its bus task's client, buses in parallel."""
        from sitegate.firmware_tools.commission_read import MeterRead, read_meter

        wanted = args.get("meters")
        cfg = self.d.config
        if wanted is None:
            wanted = [m.id for m in cfg.meters]
        if not isinstance(wanted, list) or len(wanted) > 10_000 or not all(
                isinstance(w, str) for w in wanted):
            raise CommandArgsError("meters: a list of meter ids")
        by_bus: dict[str, list[Any]] = {}
        reads: dict[str, dict[str, Any]] = {}
        for mid in wanted:
            try:
                m = cfg.meter(mid)
            except KeyError:
                reads[mid] = MeterRead(mid, error="not in the site file in force",
                                       error_kind="config").to_dict()
                continue
            by_bus.setdefault(m.bus, []).append(m)

        async def bus_round(name: str, meters: list[Any]) -> None:
            protocol = cfg.bus(name).protocol
            async with self._bus(name, protocol) as (client, lock):
                for m in meters:
                    async with lock:
                        reads[m.id] = (await read_meter(client, meter_ref(m),
                                                        protocol)).to_dict()

        await asyncio.gather(*(bus_round(n, ms) for n, ms in by_bus.items()))
        return {"reads": reads}

    async def commission_report(self, args: dict[str, Any]) -> dict[str, Any]:
        """The round's summary into the events stream: it reaches the cloud with the next
        upload, as every event does (buffered while the uplink is down)."""
        summary = args.get("summary")
        if not isinstance(summary, dict):
            raise CommandArgsError("summary: an object")
        size = len(json.dumps(summary, default=str))
        if size > MAX_SUMMARY_BYTES:
            raise CommandArgsError(f"summary of {size} bytes; at most {MAX_SUMMARY_BYTES}")
        verdict = summary.get("verdict")
        event = {"ts": datetime.now(UTC).isoformat(), "kind": "commissioning",
                 "severity": "info" if verdict == "ok" else "warning", "summary": summary}
        self.d.writer.submit_cycle([], [event])
        log.info("commission.report", verdict=verdict, meters=summary.get("meters"))
        how = ("queued in the buffer's events stream: the cloud gets it with the next "
               "upload" if self.d.config.mqtt is not None
               else "kept in the buffer's events stream, but no uplink is configured")
        return {"sent": True, "how": how}

