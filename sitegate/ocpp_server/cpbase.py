"""What the 1.6 and 2.0.1 charge point classes share, whatever the version on the wire:
construction, the gate for chargers we did not accept, the boot bookkeeping, and calls to
the charger. The version classes (``cp16``, ``cp201``) keep only their message shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from ocpp.exceptions import SecurityError
from ocpp.messages import Call
from ocpp.routing import after

from sitegate.ocpp_server.core import Connection, Core
from sitegate.ocpp_server.rawmsg import RawMessageMixin

log = structlog.get_logger(__name__)


def now() -> str:
    """OCPP timestamps: UTC, whole seconds, 'Z'."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ChargePointBase(RawMessageMixin):
    """Mixed in before the ``ocpp`` library's ChargePoint of the version."""

    VERSION: str  # "1.6" | "2.0.1"

    def __init__(self, cp_id: str, ws: Any, core: Core, conn_factory: Any) -> None:
        super().__init__(cp_id, ws, response_timeout=core.cfg.call_timeout)  # type: ignore[call-arg]
        self.core = core
        self.conn: Connection = conn_factory(self)

    async def _handle_call(self, msg: Call) -> Any:
        # A charger answered Pending (not listed) may boot again and nothing else, as OCPP
        # asks of a station that is not accepted: otherwise a charger that never proved who
        # it is could check badges and open sessions billed to tenants.
        if not self.conn.accepted and msg.action != "BootNotification":
            if self.core.unknown_seen.due("pending_refused"):
                log.warning("ocpp.pending_charger_refused", charge_point=self.id,
                            action=msg.action)
            error = SecurityError(description="charge point not accepted by the central system")
            await self._send(msg.create_call_error(error).to_json())  # type: ignore[attr-defined]
            return None
        return await super()._handle_call(msg)  # type: ignore[misc]

    async def booted(self, vendor: str | None, model: str | None, **info: Any) -> str:
        """Record a BootNotification; the status to answer with."""
        self.conn.vendor, self.conn.model = vendor, model
        seen = {"version": self.VERSION, "vendor": vendor, "model": model, "booted": now(),
                **info}
        if not self.conn.accepted:
            self.core.pending_booted(self.id, {k: str(v)[:64] if v is not None else None
                                               for k, v in seen.items()})
            return "Pending"
        self.core.store.update_charger(self.id, **seen)
        # Before answering: a transaction started right after the boot must not be taken
        # for one the reboot interrupted.
        await self.core.close_after_reboot(self.conn)
        return "Accepted"

    @after("BootNotification")
    def after_boot(self, **kw: Any) -> None:
        # Tracked by the core so a shutdown does not wait for a charger that went quiet.
        self.core.spawn_call(self._after_booted())

    async def _after_booted(self) -> None:
        if self.conn.accepted:
            await self.core.after_boot(self.conn)

    async def _call(self, payload: Any) -> Any:
        """A request to the charger; its CallError raises instead of returning None."""
        return await self.call(payload, suppress=False)  # type: ignore[attr-defined]
