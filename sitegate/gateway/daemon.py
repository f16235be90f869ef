"""The gateway daemon: composition root. Wires config, buffer, bus workers, control socket,
and (when configured) the MQTT uplink and the OCPP central system; talks to systemd.

The cloud's desired config (see remote_config) replaces buses and meters live: new bus
workers are built first, then the affected ones stop after the meter they are reading and
the new ones start, taking over the slots not yet read. The applied config is persisted
beside the buffer and used at the next start.
"""

from __future__ import annotations

import asyncio
import fcntl
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from sitegate.common.sitefile import ConfigError, SiteConfig
from sitegate.common.sitefile_ocpp import MAIN_METER_CURRENTS
from sitegate.gateway import remote_config, sdnotify
from sitegate.gateway.buffer import Buffer
from sitegate.gateway.buffer_check import check_buffer
from sitegate.gateway.buses import make_client, meter_ref
from sitegate.gateway.control import ControlServer
from sitegate.gateway.remote_commands import RemoteCommands
from sitegate.gateway.scheduler import BusWorker
from sitegate.gateway.writer import BufferView, Writer, spill_path
from sitegate.sync.protocol import Reading

log = structlog.get_logger(__name__)


class AlreadyRunning(Exception):
    pass


class Daemon:
    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.local_config = config  # the site file; the cloud may replace buses and meters
        self.applied: remote_config.Applied | None = None  # the cloud's config we run, if any
        # For status: why a saved remote config was not used; which of the site file's live
        # parts (edited since the cloud's config was applied) do not run.
        self.config_problem: str | None = None
        self.site_file_not_in_effect: list[str] = []
        self.buffer: Buffer | None = None
        self.workers: dict[str, BusWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._config_lock = asyncio.Lock()
        self.latest: dict[tuple[str, str], Reading] = {}  # live values (load management)
        self.services: list[Any] = []  # optional parts with start()/stop()/health()
        self.ocpp: Any = None
        self.points: Any = None  # local RFID relay points ([relays])
        self.sync: Any = None
        self.writer: Writer | None = None
        self.buffer_check: dict[str, Any] | None = None  # the start's check, once done
        self._stop = asyncio.Event()
        self._lock_file: Any = None
        self.started = datetime.now().astimezone()
        # Read once: an update switches the install root's 'current' link under this
        # process, and metadata read through it later would name the new version.
        self.version = _version()
        self.watchdog: dict[str, Any] = {"interval": None, "last_ping": None}
        self.remote = RemoteCommands(self)  # doctor, logs, scans, commissioning

    # -- the buffer sink -------------------------------------------------------------------

    async def commit(self, readings: list[Reading], events: list[dict[str, Any]]) -> None:
        """A bus worker's poll cycle: handed to the one writer (sitegate.gateway.writer),
        which writes it exactly once, in one transaction, in hand-over order."""
        assert self.writer is not None
        for r in readings:
            self.latest[(r.meter_id, r.quantity)] = r
        if self.ocpp is not None and self.config.ocpp is not None and any(
                r.meter_id == self.config.ocpp.load_management.main_meter
                and r.quantity in MAIN_METER_CURRENTS for r in readings):
            self.ocpp.main_meter_read()  # an overload is reduced now, not at the next pass
        self.writer.submit_cycle(readings, events)

    def _rows_written(self) -> None:
        if self.sync is not None:
            self.sync.wake()  # new rows: send now rather than at the next poll

    def _writer_state_changed(self) -> None:
        # The cloud hears of a failing disk now (an Uplink holds its client once enrolled).
        client = getattr(self.sync, "sync", self.sync)
        if client is not None and hasattr(client, "publish_status"):
            client.publish_status()

    # -- lifecycle -----------------------------------------------------------------------------

    def _take_lock(self) -> None:
        path = Path(self.config.storage.path).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(path, "w")  # noqa: SIM115 - held for the daemon's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise AlreadyRunning(f"another sitegate daemon holds {path}") from exc

    def _open_buffer(self) -> None:
        """The buffer and its one writer, started (in the running event loop)."""
        cfg = self.config
        self.buffer = Buffer(cfg.storage.path, max_bytes=cfg.storage.max_mb * 1024 * 1024)
        self.writer = Writer(self.buffer, max_pending_bytes=cfg.storage.pending_max_kb * 1024,
                             spill=spill_path(cfg.storage.path), on_written=self._rows_written,
                             on_state=self._writer_state_changed)
        self.writer.start()

    def _build_workers(self) -> None:
        self.workers.update(self._make_workers(self.config, {b.name for b in self.config.buses}))

    def _make_workers(self, cfg: SiteConfig, names: set[str]) -> dict[str, BusWorker]:
        """Workers for the named buses of ``cfg`` that have meters (not started)."""
        out: dict[str, BusWorker] = {}
        for bus in cfg.buses:
            meters = [(meter_ref(m), m.interval) for m in cfg.meters if m.bus == bus.name]
            if bus.name not in names or not (meters or bus.name in _relay_buses(cfg)):
                continue
            out[bus.name] = BusWorker(
                bus.name, make_client(bus), meters, self.commit,
                backoff_max=bus.backoff_max, clock_synchronized=_clock_check(),
            )
        return out

    def _start_worker(self, name: str) -> None:
        self._tasks[name] = asyncio.create_task(self.workers[name].run(), name=f"bus:{name}")

    # -- configuration: the local file, or the cloud's last applied one ----------------------

    def _startup_config(self) -> None:
        """Run the cloud's last applied config (its buses and meters) if there is one; say
        clearly which configuration runs."""
        local = self.local_config
        path = remote_config.applied_path(local.storage.path)
        try:
            applied = remote_config.load(path)
            if applied is None:
                log.info("daemon.config", source="local file", buses=len(local.buses),
                         meters=len(local.meters))
                return
            desired = remote_config.parse_desired(applied.config, str(path))
        except (ValueError, ConfigError) as exc:
            self.config_problem = f"the saved remote config is not usable: {exc}"
            log.error("daemon.config", source="local file", problem=self.config_problem)
            return
        fixed = remote_config.fixed_changes(local, desired)
        if "gateway_id" in fixed:
            self.config_problem = (f"{path} is for gateway {desired.gateway_id!r}, "
                                   f"not {local.gateway_id!r}")
            log.error("daemon.config", source="local file", problem=self.config_problem)
            return
        self.config = remote_config.merged(local, desired)
        self.applied = applied
        self.site_file_not_in_effect = remote_config.live_changes(local, self.config)
        log.warning("daemon.config", source="remote", version=applied.version,
                    applied_at=applied.applied_at, persisted=str(path),
                    buses=len(self.config.buses), meters=len(self.config.meters),
                    note="buses and meters from the cloud's config, the rest from the site "
                         "file; delete the persisted file to run the site file's again",
                    **({"site_file_not_in_effect": self.site_file_not_in_effect}
                       if self.site_file_not_in_effect else {}),
                    **({"site_file_differs_in": fixed} if fixed else {}))

    async def _apply_remote_config(self, desired: dict[str, Any]) -> str | None:
        """The sync client's on_config: None when applied, else why not. Whole or nothing."""
        async with self._config_lock:
            return await self._apply_locked(int(desired["version"]), desired["config"])

    async def _apply_locked(self, version: int, payload: str | dict[str, Any]) -> str | None:
        if self._stop.is_set():
            return f"config v{version}: the gateway is stopping; not applied"
        try:
            new = await asyncio.to_thread(remote_config.parse_desired, payload,
                                          f"config v{version}")
        except ConfigError as exc:
            return f"config v{version} is not valid: " + "; ".join(map(str, exc.problems))
        fixed = remote_config.fixed_changes(self.config, new)
        if fixed:
            return (f"config v{version} changes {', '.join(fixed)}, which cannot be applied "
                    f"live (only {remote_config.LIVE} can): change the site file and restart")
        target = remote_config.merged(self.config, new)
        changed = remote_config.changed_buses(self.config, target)
        try:  # everything new first: a failure here changes nothing
            fresh = self._make_workers(target, changed)
        except Exception as exc:  # noqa: BLE001 - reported to the cloud
            return f"config v{version} cannot be applied: {type(exc).__name__}: {exc}"
        try:
            applied = await asyncio.to_thread(
                remote_config.save, remote_config.applied_path(self.config.storage.path),
                version, payload)
        except OSError as exc:
            for w in fresh.values():
                await w.client.close()
            return f"config v{version} not applied: cannot persist it: {exc}"
        # Switch: the affected workers finish the meter they are reading, commit, then go.
        old = [(n, self.workers.pop(n), self._tasks.pop(n, None)) for n in changed
               if n in self.workers]
        for _, w, _ in old:
            w.stop()
        await asyncio.gather(*(t for _, _, t in old if t is not None), return_exceptions=True)
        # A meter may move between buses: its schedule goes with it, by meter id.
        stopped = [m for _, w, _ in old for m in w.meters]
        for w in fresh.values():
            w.take_over(stopped)
        self.config = target
        self.applied = applied
        self.site_file_not_in_effect = remote_config.live_changes(self.local_config, target)
        if self.buffer is not None:
            self.buffer.max_bytes = target.storage.max_mb * 1024 * 1024
        if self.writer is not None:
            self.writer.max_pending_bytes = target.storage.pending_max_kb * 1024
        for name, w in fresh.items():
            self.workers[name] = w
            self._start_worker(name)
        log.info("daemon.config_applied", version=version, buses_restarted=sorted(changed),
                 buses=len(self.workers), meters=len(target.meters))
        return None

    def _build_services(self, ctl: ControlServer) -> None:
        """The optional parts, each only when its table is in the site file."""
        cfg = self.config
        assert self.buffer is not None and self.writer is not None
        view = BufferView(self.buffer, self.writer)  # their appends go through the writer
        if cfg.ocpp is not None:
            from sitegate.ocpp_server.service import CentralSystem

            self.ocpp = CentralSystem(
                cfg.ocpp, view, str(Path(cfg.storage.path).with_name("ocpp-state.db")),
                main_meter_currents=self._main_meter_currents,
            )
            self.services.append(self.ocpp)
            ctl.add_prefix("ocpp", self.ocpp.handle_command)
        if cfg.relays is not None:
            self._build_points(ctl)
        if cfg.mqtt is not None:
            from sitegate.firmware_tools.identity import Identity, state_dir
            from sitegate.gateway.uplink import Uplink, uses_identity
            from sitegate.sync.client import SyncClient

            def make_sync(mqtt: Any) -> SyncClient:
                client = SyncClient(
                    mqtt, cfg.gateway_id, view,  # type: ignore[arg-type]
                    on_config=self._apply_remote_config,
                    on_badges=self.ocpp.update_badges if self.ocpp is not None
                    else self.points.update_badges if self.points is not None else None,
                    on_command=self._cloud_command,
                    applied_config_version=self.applied.version if self.applied else None,
                    # identity/downlink.pub and the record of executed commands
                    state_dir=state_dir(cfg.storage.path),
                )
                client.status_extra = lambda: {"buffer_writer": self.writer.status()
                                               if self.writer else None}
                return client

            # mqtts without client files: mutual TLS with the box's own identity (enrolled
            # from the claim token in the state directory if need be).
            identity = Identity.of_state(state_dir(cfg.storage.path))
            self.sync = (Uplink(cfg.mqtt, cfg.gateway_id, identity, make_sync)
                         if uses_identity(cfg.mqtt) else make_sync(cfg.mqtt))
            self.services.append(self.sync)

    def _build_points(self, ctl: ControlServer) -> None:
        """RFID relay points, on the OCPP badge list when there is one (one list for both)."""
        from sitegate.gateway.points_service import PointsService, own_badges

        cfg = self.config
        assert cfg.relays is not None and self.buffer is not None and self.writer is not None
        state = str(Path(cfg.storage.path).with_name("points-state.db"))
        badges = (self.ocpp.core.badges if self.ocpp is not None
                  else own_badges(cfg.relays, state))
        self.points = PointsService(cfg.relays, badges, BufferView(self.buffer, self.writer),
                                    state, self._bus_access)  # appends through the writer
        ctl.add_prefix("relay", self.points.handle_command)

    def _bus_access(self, bus: str) -> Any:
        """(client, lock) of the bus task now running ``bus``: a relay device follows it
        across config changes."""
        from sitegate.drivers.base import BusError

        def access() -> tuple[Any, asyncio.Lock]:
            worker = self.workers.get(bus)
            if worker is None:
                raise BusError(f"bus {bus!r} is not running")
            return worker.client, worker.bus_lock

        return access

    def _main_meter_currents(self) -> tuple[tuple[Any, ...], datetime] | None:
        """Per-phase currents of the building's main meter, for load management."""
        assert self.config.ocpp is not None
        meter = getattr(self.config.ocpp.load_management, "main_meter", None)
        phases = [self.latest.get((meter, q)) for q in MAIN_METER_CURRENTS]
        if meter is None or any(r is None for r in phases):
            return None
        # When the meter was read (not the slot it belongs to): the chargers' draw is matched
        # to that instant, and staleness counts from it.
        return (tuple(r.value for r in phases if r),
                min(r.read_at or r.ts for r in phases if r))

    async def _cloud_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Commands from the cloud run through the same handlers as the local CLI's."""
        if name.startswith("ocpp.") and self.ocpp is not None:
            return await self.ocpp.handle_command(name.removeprefix("ocpp."), args)
        if name.startswith("relay.") and self.points is not None:
            return await self.points.handle_command(name.removeprefix("relay."), args)
        handlers = {"read": self._cmd_read, "buffer.stats": self._cmd_buffer_stats,
                    "status": self._cmd_status, "update.apply": self._cmd_update,
                    **self.remote.names()}
        if name not in handlers:
            raise ValueError(f"unknown command {name!r}")
        return await handlers[name](args)

    def _control(self) -> ControlServer:
        ctl = ControlServer(self.config.health.socket)
        ctl.add("status", self._cmd_status)
        ctl.add("read", self._cmd_read)
        ctl.add("buffer.stats", self._cmd_buffer_stats)
        for name, handler in self.remote.names().items():
            ctl.add(name, handler)
        return ctl

    async def _cmd_status(self, _args: dict[str, Any]) -> dict[str, Any]:
        assert self.buffer is not None
        # In a thread: the buffer's stats wait for its lock, which a slow write holds.
        return self.health(await asyncio.to_thread(self.buffer.stats))

    async def _cmd_read(self, args: dict[str, Any]) -> dict[str, Any]:
        meter = self.config.meter(args["meter_id"])
        readings = await self.workers[meter.bus].read_now(meter.id)
        return {"meter_id": meter.id, "readings": [r.to_dict() for r in readings]}

    async def _cmd_update(self, args: dict[str, Any]) -> dict[str, Any]:
        """Fetch and check an update; the privileged sitegate-update unit installs it."""
        from sitegate.firmware_tools.identity import state_dir
        from sitegate.firmware_tools.update_request import request

        return await asyncio.to_thread(request, state_dir(self.config.storage.path), args)

    def _report_update(self) -> None:
        """The last update's outcome, once, as an event for the cloud."""
        from sitegate.firmware_tools.identity import state_dir
        from sitegate.firmware_tools.update_request import outcome_to_report

        try:
            out = outcome_to_report(state_dir(self.config.storage.path))
        except OSError as exc:
            log.warning("update.report_failed", error=str(exc))
            return
        if out is not None and self.writer is not None:
            log.info("update.outcome", **out)
            self.writer.submit_cycle([], [{
                "ts": datetime.now().astimezone().isoformat(), "kind": "update",
                "severity": "info" if out["outcome"] == "switched" else "warning", **out}])

    async def _cmd_buffer_stats(self, _args: dict[str, Any]) -> dict[str, Any]:
        assert self.buffer is not None
        return await asyncio.to_thread(self.buffer.stats)

    def health(self, stats: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.buffer is not None
        stats = stats if stats is not None else self.buffer.stats()
        return {
            "gateway_id": self.config.gateway_id,
            "version": self.version,  # an update waits for its own version to report healthy
            "started": self.started.isoformat(),
            "buses": [w.health() for w in self.workers.values()],
            "backlog": {s: v["unacknowledged"] for s, v in stats["streams"].items()},
            "buffer_bytes": stats["used_bytes"],
            "writer": self.writer.health() if self.writer else None,
            "buffer_check": self.buffer_check,
            "watchdog": self.watchdog,
            "config": {"source": "remote" if self.applied else "local",
                       "version": self.applied.version if self.applied else None,
                       "applied_at": self.applied.applied_at if self.applied else None,
                       "saved_at": str(remote_config.applied_path(
                           self.local_config.storage.path)),
                       "site_file_not_in_effect": self.site_file_not_in_effect,
                       "problem": self.config_problem},
            "services": {getattr(s, "health_name", type(s).__name__): s.health()
                         for s in self.services},
            **({"relays": self.points.health()} if self.points is not None else {}),
        }

    async def stop_polling(self) -> None:
        """Stop reading meters, syncing goes on: each worker finishes the meter it is
        reading and hands over its cycle. For an orderly stop that sends everything read
        before the daemon stops (the demo's end); stopping the daemon stops them anyway."""
        async with self._config_lock:
            for w in self.workers.values():
                w.stop()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def request_stop(self) -> None:
        log.info("daemon.stopping")
        sdnotify.notify("STOPPING=1")
        self._stop.set()

    async def run(self) -> int:
        self._take_lock()
        self._startup_config()
        cfg = self.config
        self._open_buffer()
        assert self.writer is not None
        self.writer.take_back()  # what the last run could not write, before anything new
        self._report_update()
        check = asyncio.create_task(self._check_buffer(), name="buffer-check")
        self._build_workers()
        ctl = self._control()
        self._build_services(ctl)
        await ctl.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        for service in self.services:
            await service.start()
        if self.points is not None:
            await self.points.start()  # closes sessions a crash left open, before polling
        for name in self.workers:
            self._start_worker(name)
        log.info("daemon.ready", gateway=cfg.gateway_id, buses=len(self.workers),
                 meters=len(cfg.meters), buffer=cfg.storage.path, socket=cfg.health.socket)
        sdnotify.notify("READY=1")
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self._stop.wait()
        finally:
            if self.points is not None:  # before the buses they use go
                await self.points.stop()
            async with self._config_lock:  # no config switch half done
                for w in self.workers.values():
                    w.stop()
                # Workers finish the meter they are reading and hand over their cycle.
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            for service in reversed(self.services):
                try:
                    await service.stop()
                except Exception:
                    log.exception("service.stop_failed", service=type(service).__name__)
            await self.writer.close()  # a last write; what is left goes to the spill file
            watchdog.cancel()
            check.cancel()
            await ctl.stop()
            self.buffer.close()
            w = self.writer.health()
            log.info("daemon.stopped", readings_polled=self._readings_polled(),
                     rows_written=w["written_rows"], lost_rows=w["lost_rows"])
        return 0

    async def _check_buffer(self) -> None:
        """Duplicates and sequence gaps, once at start, on a connection of its own."""
        try:
            result = await asyncio.to_thread(check_buffer, self.config.storage.path)
        except Exception as exc:  # noqa: BLE001 - a diagnosis; the daemon runs on
            log.error("buffer.check_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.buffer_check = {s: {k: v[k] for k in ("duplicate_rows", "missing")}
                             for s, v in result["streams"].items()}
        if result["ok"]:
            log.info("buffer.check", ok=True)
        else:
            log.error("buffer.check", ok=False, found=self.buffer_check,
                      note="rows stored twice or sequence gaps; see `sitegate buffer check`")

    def _readings_polled(self) -> int:
        """Readings the bus workers of this run handed over (for the stop log)."""
        return sum(m.readings for w in self.workers.values() for m in w.meters)

    async def _watchdog(self) -> None:
        interval = sdnotify.watchdog_interval()
        self.watchdog = {"interval": interval, "last_ping": None}  # for doctor
        while True:
            await asyncio.sleep(interval or 10)
            if interval:
                # Pinging from the event loop proves the loop is not stuck.
                sdnotify.notify("WATCHDOG=1")
                self.watchdog["last_ping"] = datetime.now().astimezone().isoformat()
            sdnotify.notify(f"STATUS={self._status_line()}")

    def _status_line(self) -> str:
        failing = sum(1 for w in self.workers.values() for m in w.meters if m.failures)
        total = sum(len(w.meters) for w in self.workers.values())
        return f"{total - failing}/{total} meters ok"


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sitegate")
    except PackageNotFoundError:
        return None


def _relay_buses(cfg: SiteConfig) -> set[str]:
    """Buses with relay devices: they get a bus task (its lock) even without meters."""
    from sitegate.common.sitefile_relays import ModbusRelayDevice

    if cfg.relays is None:
        return set()
    return {d.bus for d in cfg.relays.devices if isinstance(d, ModbusRelayDevice)}


def _clock_check():  # type: ignore[no-untyped-def]
    try:
        from sitegate.gateway.clock import clock_synchronized
    except ImportError:
        return lambda: True
    return clock_synchronized
