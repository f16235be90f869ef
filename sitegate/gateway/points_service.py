"""The ``[relays]`` part of the daemon: builds the relay devices, readers and points, runs
one poll task per point and one task per reader, and answers ``relay.*`` commands.

    svc = PointsService(cfg.relays, badges, buffer, state_path, bus_access)
    await svc.start(); ...; await svc.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog

from sitegate.common.sitefile_relays import ModbusRelayDevice, ReaderConfig, RelaysConfig
from sitegate.drivers.relays.base import RelayDevice
from sitegate.drivers.relays.modbus_relay import BusAccess, ModbusRelay
from sitegate.drivers.relays.profile import load_relay_profile
from sitegate.drivers.relays.shelly import ShellyClient
from sitegate.drivers.rfid.keyboard import KeyboardReader, ReaderUnavailable
from sitegate.drivers.rfid.serial_reader import SerialReader
from sitegate.drivers.rfid.uid import BadRead, reader_text
from sitegate.gateway.points import Point, Sink
from sitegate.ocpp_server.badges import BadgeList
from sitegate.ocpp_server.state import StateStore

log = structlog.get_logger(__name__)

READER_RETRY = 10.0  # seconds before reopening a reader that failed (unplugged)


def make_device(cfg: Any, bus_access: Callable[[str], BusAccess]) -> RelayDevice:
    if isinstance(cfg, ModbusRelayDevice):
        return ModbusRelay(cfg.id, bus_access(cfg.bus), cfg.unit,
                           load_relay_profile(cfg.profile))
    return ShellyClient(cfg.host, cfg.port, password=cfg.password, transport=cfg.transport,
                        timeout=cfg.timeout)


def make_reader(cfg: ReaderConfig) -> KeyboardReader | SerialReader:
    if cfg.type == "keyboard":
        return KeyboardReader(cfg.device)
    return SerialReader(cfg.device, cfg.baudrate)


class PointsService:
    def __init__(self, cfg: RelaysConfig, badges: BadgeList, sink: Sink, state_path: str,
                 bus_access: Callable[[str], BusAccess]) -> None:
        self.cfg = cfg
        self.badges = badges
        self.sink = sink
        self.store = StateStore(state_path)
        self.devices = {d.id: make_device(d, bus_access) for d in cfg.devices}
        self.points: dict[str, Point] = {}
        for p in cfg.points:
            fmt = cfg.reader(p.reader).badge_format if p.reader else "hex"
            self.points[p.id] = Point(p, self.devices[p.device], badges, self.store, sink, fmt)
        self.readers: dict[str, dict[str, Any]] = {
            r.id: {"state": "starting", "error": None, "reads": 0} for r in cfg.readers}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for point in self.points.values():
            try:
                closed = await point.recover()
            except Exception:
                log.exception("point.recover_failed", point=point.cfg.id)
                continue
            if closed:
                log.warning("point.recovered", point=point.cfg.id, sessions_closed=closed)
        for point in self.points.values():
            self._tasks.append(asyncio.create_task(self._poll(point),
                                                   name=f"point:{point.cfg.id}"))
        by_reader = {p.cfg.reader: p for p in self.points.values() if p.cfg.reader}
        for r in self.cfg.readers:
            point = by_reader.get(r.id)
            if point is not None:
                self._tasks.append(asyncio.create_task(self._read(r, point),
                                                       name=f"reader:{r.id}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for d in self.devices.values():
            with contextlib.suppress(Exception):
                await d.close()
        self.store.close()

    async def _poll(self, point: Point) -> None:
        while True:
            try:
                await point.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one point must not stop the others
                log.exception("point.poll_crashed", point=point.cfg.id)
            await asyncio.sleep(point.cfg.poll_interval)

    async def _read(self, cfg: ReaderConfig, point: Point) -> None:
        state = self.readers[cfg.id]
        last: tuple[str, float] | None = None
        while True:
            try:
                def opened() -> None:
                    if state["state"] == "unavailable":
                        self._event("reader_recovered", "info", cfg.id)
                    state["state"], state["error"] = "listening", None

                async for line in make_reader(cfg).lines(opened):
                    try:
                        text = reader_text(line, cfg.encoding)
                    except BadRead as exc:
                        log.warning("reader.bad_read", reader=cfg.id, error=str(exc))
                        continue
                    now = time.monotonic()
                    if last is not None and last[0] == text and now - last[1] < cfg.debounce:
                        last = (text, now)  # the card is still held: one presentation
                        continue
                    last = (text, now)
                    state["reads"] += 1
                    result = await point.present(text)
                    log.info("reader.presented", reader=cfg.id, point=point.cfg.id, **result)
                raise ReaderUnavailable(f"{cfg.device}: closed")
            except asyncio.CancelledError:
                raise
            except ReaderUnavailable as exc:
                if state["error"] != str(exc):
                    log.error("reader.unavailable", reader=cfg.id, error=str(exc),
                              retry_in=READER_RETRY)
                if state["state"] != "unavailable":  # one event per outage
                    self._event("reader_fault", "warning", cfg.id, error=str(exc))
                state["state"], state["error"] = "unavailable", str(exc)
            except Exception as exc:
                log.exception("reader.crashed", reader=cfg.id)
                state["state"], state["error"] = "unavailable", repr(exc)
            await asyncio.sleep(READER_RETRY)

    def _event(self, kind: str, severity: str, reader: str, **fields: Any) -> None:
        try:
            self.sink.append_event(kind, severity=severity, reader=reader, **fields)
        except Exception:
            log.exception("reader.event_not_buffered", kind=kind)

    # -- control socket ----------------------------------------------------------------------

    async def handle_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if name == "list":
            return self.health()
        if name in ("on", "off"):
            point = self.points.get(str(args.get("point")))
            if point is None:
                raise ValueError(f"unknown point {args.get('point')!r}; known: "
                                 f"{', '.join(sorted(self.points)) or 'none'}")
            return await point.switch(name == "on")
        raise ValueError(f"unknown relay command {name!r}")

    def update_badges(self, payload: dict[str, Any]) -> None:
        """The cloud's badge list when there is no OCPP part to hold it."""
        self.badges.load_cloud(payload)
        self.store.put("cloud_badges", payload)

    def health(self) -> dict[str, Any]:
        return {"points": [p.health() for p in self.points.values()],
                "readers": [{"reader": k, **v} for k, v in self.readers.items()]}


def own_badges(cfg: RelaysConfig, state_path: str) -> BadgeList:
    """Without [ocpp]: the points' badge list from [relays].badges and the cloud's last list."""
    badges = BadgeList(cfg.badges)
    store = StateStore(state_path)
    try:
        cached = store.get("cloud_badges")
    finally:
        store.close()
    if cached is not None:
        badges.load_cloud(cached)
    return badges
