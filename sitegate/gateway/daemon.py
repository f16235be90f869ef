"""The gateway daemon: composition root. Wires config, buffer, bus workers, control socket,
and (when configured) the MQTT uplink and the OCPP central system; talks to systemd."""

from __future__ import annotations

import asyncio
import fcntl
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from sitegate.gateway import sdnotify
from sitegate.gateway.buffer import Buffer
from sitegate.gateway.buses import make_client, meter_ref
from sitegate.gateway.config import SiteConfig
from sitegate.gateway.control import ControlServer
from sitegate.gateway.scheduler import BusWorker
from sitegate.sync.protocol import STREAM_EVENTS, STREAM_READINGS, Reading

log = structlog.get_logger(__name__)


class AlreadyRunning(Exception):
    pass


class Daemon:
    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.buffer: Buffer | None = None
        self.workers: dict[str, BusWorker] = {}
        self.latest: dict[tuple[str, str], Reading] = {}  # live values (load management)
        self.services: list[Any] = []  # optional parts with start()/stop()/health()
        self.ocpp: Any = None
        self.sync: Any = None
        self._unwritten: list[tuple[list[Reading], list[dict[str, Any]]]] = []
        self._stop = asyncio.Event()
        self._lock_file: Any = None
        self.started = datetime.now().astimezone()

    # -- the buffer sink -------------------------------------------------------------------

    async def commit(self, readings: list[Reading], events: list[dict[str, Any]]) -> None:
        """One poll cycle into the buffer in one transaction. If the write fails (disk full,
        I/O error) the cycle stays in memory and is retried with the next one."""
        assert self.buffer is not None
        for r in readings:
            self.latest[(r.meter_id, r.quantity)] = r
        self._unwritten.append((readings, events))
        all_r = [r for batch, _ in self._unwritten for r in batch]
        all_e = [e for _, batch in self._unwritten for e in batch]
        try:
            await asyncio.to_thread(self.buffer.append_many, {
                STREAM_READINGS: ([r.to_dict() for r in all_r], [r.ts.isoformat() for r in all_r]),
                STREAM_EVENTS: (all_e, None),
            })
        except Exception:
            log.exception("buffer.write_failed", pending_cycles=len(self._unwritten),
                          readings=len(all_r))
            return
        self._unwritten.clear()
        if self.sync is not None:
            self.sync.wake()  # new rows: send now rather than at the next poll

    # -- lifecycle -----------------------------------------------------------------------------

    def _take_lock(self) -> None:
        path = Path(self.config.storage.path).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(path, "w")  # noqa: SIM115 - held for the daemon's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise AlreadyRunning(f"another sitegate daemon holds {path}") from exc

    def _build_workers(self) -> None:
        for bus in self.config.buses:
            meters = [(meter_ref(m), m.interval) for m in self.config.meters if m.bus == bus.name]
            if not meters:
                continue
            self.workers[bus.name] = BusWorker(
                bus.name, make_client(bus), meters, self.commit,
                backoff_max=bus.backoff_max, clock_synchronized=_clock_check(),
            )

    def _build_services(self, ctl: ControlServer) -> None:
        """The optional parts, each only when its table is in the site file."""
        cfg = self.config
        assert self.buffer is not None
        if cfg.ocpp is not None:
            from sitegate.ocpp_server.service import CentralSystem

            self.ocpp = CentralSystem(
                cfg.ocpp, self.buffer, str(Path(cfg.storage.path).with_name("ocpp-state.db")),
                main_meter_currents=self._main_meter_currents,
            )
            self.services.append(self.ocpp)
            ctl.add_prefix("ocpp", self.ocpp.handle_command)
        if cfg.mqtt is not None:
            from sitegate.sync.client import SyncClient

            self.sync = SyncClient(
                cfg.mqtt, cfg.gateway_id, self.buffer,
                on_badges=self.ocpp.update_badges if self.ocpp is not None else None,
                on_command=self._cloud_command,
            )
            self.services.append(self.sync)

    def _main_meter_currents(self) -> tuple[tuple[Any, ...], datetime] | None:
        """Per-phase currents of the building's main meter, for load management."""
        assert self.config.ocpp is not None
        meter = getattr(self.config.ocpp.load_management, "main_meter", None)
        phases = [self.latest.get((meter, q)) for q in ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0")]
        if meter is None or any(r is None for r in phases):
            return None
        return tuple(r.value for r in phases if r), min(r.ts for r in phases if r)

    async def _cloud_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Commands from the cloud run through the same handlers as the local CLI's."""
        if name.startswith("ocpp.") and self.ocpp is not None:
            return await self.ocpp.handle_command(name.removeprefix("ocpp."), args)
        handlers = {"read": self._cmd_read, "buffer.stats": self._cmd_buffer_stats,
                    "status": self._cmd_status}
        if name not in handlers:
            raise ValueError(f"unknown command {name!r}")
        return await handlers[name](args)

    def _control(self) -> ControlServer:
        ctl = ControlServer(self.config.health.socket)
        ctl.add("status", self._cmd_status)
        ctl.add("read", self._cmd_read)
        ctl.add("buffer.stats", self._cmd_buffer_stats)
        return ctl

    async def _cmd_status(self, _args: dict[str, Any]) -> dict[str, Any]:
        return self.health()

    async def _cmd_read(self, args: dict[str, Any]) -> dict[str, Any]:
        meter = self.config.meter(args["meter_id"])
        readings = await self.workers[meter.bus].read_now(meter.id)
        return {"meter_id": meter.id, "readings": [r.to_dict() for r in readings]}

    async def _cmd_buffer_stats(self, _args: dict[str, Any]) -> dict[str, Any]:
        assert self.buffer is not None
        return await asyncio.to_thread(self.buffer.stats)

    def health(self) -> dict[str, Any]:
        assert self.buffer is not None
        stats = self.buffer.stats()
        return {
            "gateway_id": self.config.gateway_id,
            "started": self.started.isoformat(),
            "buses": [w.health() for w in self.workers.values()],
            "backlog": {s: v["unacknowledged"] for s, v in stats["streams"].items()},
            "buffer_bytes": stats["used_bytes"],
            "unwritten_cycles": len(self._unwritten),
            "services": {type(s).__name__: s.health() for s in self.services},
        }

    def request_stop(self) -> None:
        log.info("daemon.stopping")
        sdnotify.notify("STOPPING=1")
        self._stop.set()

    async def run(self) -> int:
        self._take_lock()
        cfg = self.config
        self.buffer = Buffer(cfg.storage.path, max_bytes=cfg.storage.max_mb * 1024 * 1024)
        self._build_workers()
        ctl = self._control()
        self._build_services(ctl)
        await ctl.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        for service in self.services:
            await service.start()
        tasks = [asyncio.create_task(w.run(), name=f"bus:{n}") for n, w in self.workers.items()]
        log.info("daemon.ready", gateway=cfg.gateway_id, buses=len(self.workers),
                 meters=len(cfg.meters), buffer=cfg.storage.path, socket=cfg.health.socket)
        sdnotify.notify("READY=1")
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self._stop.wait()
        finally:
            for w in self.workers.values():
                w.stop()
            # Workers finish the meter they are reading and commit their cycle.
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._unwritten:
                await self.commit([], [])
            for service in reversed(self.services):
                try:
                    await service.stop()
                except Exception:
                    log.exception("service.stop_failed", service=type(service).__name__)
            watchdog.cancel()
            await ctl.stop()
            self.buffer.close()
            log.info("daemon.stopped")
        return 0

    async def _watchdog(self) -> None:
        interval = sdnotify.watchdog_interval()
        while True:
            await asyncio.sleep(interval or 10)
            if interval:
                # Pinging from the event loop proves the loop is not stuck.
                sdnotify.notify("WATCHDOG=1")
            sdnotify.notify(f"STATUS={self._status_line()}")

    def _status_line(self) -> str:
        failing = sum(1 for w in self.workers.values() for m in w.meters if m.failures)
        total = sum(len(w.meters) for w in self.workers.values())
        return f"{total - failing}/{total} meters ok"


def _clock_check():  # type: ignore[no-untyped-def]
    try:
        from sitegate.gateway.clock import clock_synchronized
    except ImportError:
        return lambda: True
    return clock_synchronized
