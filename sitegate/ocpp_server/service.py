"""``CentralSystem``: the OCPP part as the gateway daemon sees it.

    cs = CentralSystem(cfg.ocpp, buffer, "/var/lib/sitegate/ocpp.db",
                       main_meter_currents=live_main_meter)
    await cs.start(); ...; await cs.stop()

After each poll cycle that read the main meter the daemon calls ``main_meter_read()``, so
load management reacts to an overload at that reading, not at its next periodic pass.

The daemon routes control-socket commands ``ocpp.<name>`` and cloud commands to
``handle_command(name, args)`` and the retained ``badges`` topic to ``update_badges``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed

from sitegate.common.sitefile_ocpp import OcppConfig
from sitegate.ocpp_server import commands
from sitegate.ocpp_server.core import Connection, Core, Sink
from sitegate.ocpp_server.cp16 import CP16
from sitegate.ocpp_server.cp201 import CP201
from sitegate.ocpp_server.loadmgmt import LoadManager, MainMeter
from sitegate.ocpp_server.server import start_server

log = structlog.get_logger(__name__)


class CentralSystem:
    def __init__(self, cfg: OcppConfig, sink: Sink, state_path: str, *,
                 main_meter_currents: MainMeter | None = None) -> None:
        self.cfg = cfg
        self.core = Core(cfg, sink, state_path)
        self.core.on_boot = self._on_boot
        self.load = LoadManager(self.core, cfg.load_management, main_meter_currents)
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        resent = await self.core.report_pending()
        if resent:
            log.info("ocpp.reports_resent", count=resent)
        self._server = await start_server(self.cfg, self._serve)
        self._tasks.append(asyncio.create_task(self._report_running()))
        if self.cfg.load_management.enabled:
            self._tasks.append(asyncio.create_task(self.load.run()))
        log.info("ocpp.started", port=self.port, security=self.cfg.security.profile)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.core.drain()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.core.drain()
        self.core.store.close()

    def health(self) -> dict[str, Any]:
        conns = self.core.connections
        return {
            "listening": self._server is not None,
            "connected": len(conns),
            "accepted": sum(1 for c in conns.values() if c.accepted),
            "open_sessions": len(self.core.store.open_txs()),
            "badge_list_version": self.core.badges.version,
            "load_management": self.load.last if self.cfg.load_management.enabled else None,
            "profiles_disabled": sorted(c.cp_id for c in conns.values() if c.profiles_disabled),
            "pending_seen": sorted(self.core.pending),  # unknown chargers, newest kept
        }

    def main_meter_read(self) -> None:
        """The daemon got a new main meter reading: load management reduces the limits at
        once if it shows a phase over the connection limit minus the safety margin."""
        if self.cfg.load_management.enabled:
            self.load.main_meter_read()

    def update_badges(self, badge_list: dict[str, Any]) -> None:
        """New retained badge list from the cloud; pushed to chargers with a local list."""
        try:
            self.core.update_badges(badge_list)
        except (ValueError, TypeError) as exc:
            self.core.event("badge_list_rejected", severity="warning", error=str(exc))
            return
        log.info("ocpp.badges_updated", version=self.core.badges.version)
        for conn in list(self.core.connections.values()):
            self.core.spawn_call(self._push_local_list(conn))

    async def handle_command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await commands.run(self, name, args)

    # -- connections ---------------------------------------------------------------------------

    async def _serve(self, ws: ServerConnection, cp_id: str, version: str) -> None:
        config = self.core.charger_config(cp_id)
        assert config is not None  # the handshake rejected unknown ones already
        accepted = self.core.is_known(cp_id) or self.cfg.security.unknown_chargers == "accept"

        def make_conn(cp: Any) -> Connection:
            return Connection(cp_id, version, cp, config, accepted=accepted)

        cls = CP16 if version == "1.6" else CP201
        cp = cls(cp_id, ws, self.core, make_conn)
        old = self.core.connections.get(cp_id)
        if old is not None:  # the charger reconnected before we noticed the old link died
            await old.cp._connection.close()
        self.core.connections[cp_id] = cp.conn
        log.info("ocpp.connected", charge_point=cp_id, version=version,
                 peer=str(ws.remote_address), accepted=accepted)
        try:
            await cp.start()
        except ConnectionClosed:
            pass
        finally:
            if self.core.connections.get(cp_id) is cp.conn:
                del self.core.connections[cp_id]
            log.info("ocpp.disconnected", charge_point=cp_id)
            self.core.on_change()

    async def _on_boot(self, conn: Connection) -> None:
        """After an accepted boot: learn the charger's units, give it our badge list and a
        safe default limit."""
        try:
            caps = await conn.cp.read_capabilities()
        except Exception as exc:
            log.warning("ocpp.capabilities_unknown", charge_point=conn.cp_id, error=repr(exc))
            caps = {"rate_unit": "A", "local_list": False}
        conn.rate_unit = (conn.config.limit_unit if conn.config.limit_unit != "auto"
                          else caps["rate_unit"])
        self.core.store.update_charger(conn.cp_id, rate_unit=conn.rate_unit,
                                       local_list=caps["local_list"])
        if caps["local_list"]:
            await self._push_local_list(conn)
        lm = self.cfg.load_management
        if lm.enabled and conn.config.kind == "ev":
            status = await self.load.push_one(
                conn, 0, min(lm.fallback_current, conn.config.max_current), None)
            log.info("ocpp.default_profile", charge_point=conn.cp_id, status=status)
        self.core.on_change()

    async def _push_local_list(self, conn: Connection) -> None:
        if not self.core.store.charger_info(conn.cp_id).get("local_list"):
            return
        version = self.core.badges.version or 1
        if self.core.store.charger_info(conn.cp_id).get("list_version") == version:
            return
        # A badge already past its expiry goes out as Expired: a charger whose clock was
        # lost (no RTC after a power cut) would otherwise take it for valid.
        now = datetime.now(UTC)
        entries = [{"id": b.id, "status": "Expired" if b.expires and b.expires <= now
                    else _status16(b.status),
                    "expires": b.expires.isoformat() if b.expires else None}
                   for b in self.core.badges.all()]
        try:
            status = await conn.cp.send_local_list(version, entries)
        except Exception as exc:
            status = f"failed: {exc!r}"
        log.info("ocpp.local_list_sent", charge_point=conn.cp_id, version=version,
                 entries=len(entries), status=status)
        if status == "Accepted":
            self.core.store.update_charger(conn.cp_id, list_version=version)

    async def _report_running(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.session_report_interval)
            try:
                await self.core.report_running()
            except Exception as exc:
                log.error("ocpp.report_failed", error=repr(exc))

    def connection(self, cp_id: str) -> Connection:
        conn = self.core.connections.get(cp_id)
        if conn is None:
            raise commands.CommandError(f"charge point {cp_id!r} is not connected")
        return conn

    def set_manual_cap(self, cp_id: str, connector: int, amps: Decimal) -> None:
        self.load.manual_caps[(cp_id, connector)] = amps
        self.core.on_change()


def _status16(status: str) -> str:
    return {"accepted": "Accepted", "blocked": "Blocked", "expired": "Expired"}[status]
