"""What the central system knows and does, independent of the OCPP version on the wire.

The version-specific charge point classes (``cp16``, ``cp201``) translate messages into
calls on ``Core``: authorize a badge, open, feed and close transactions, report sessions to
the sink. ``Core`` owns the state file, the badge list and the live connection table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import structlog

from sitegate.common import ocmf
from sitegate.common.ocmf_keys import OcmfError, key_hex, same_key
from sitegate.common.sitefile_ocpp import ChargePointConfig, OcppConfig
from sitegate.ocpp_server.badges import BadgeList, Decision
from sitegate.ocpp_server.lenient import MeterValue, currents, energy_register
from sitegate.ocpp_server.limits import Throttle
from sitegate.ocpp_server.signed import SignedIn
from sitegate.ocpp_server.state import StateStore, Tx
from sitegate.sync.protocol import (
    STREAM_SESSIONS,
    SessionMeterValue,
    SessionRecord,
    SignedMeterValue,
)

log = structlog.get_logger(__name__)

DRAW_LOG = 32  # draw changes kept per charger: more than arrive between main meter reads
PENDING_KEPT = 64  # unknown chargers remembered (in memory) for `sitegate ocpp list`
RAW_KEPT = 64 * 1024  # characters of a nonconformant message kept for inspection


class Sink(Protocol):
    """Where sessions and events go: the gateway's Buffer satisfies this."""

    def append(self, stream: str, payloads: list[dict[str, Any]]) -> Any: ...

    def append_event(self, kind: str, severity: str = "info", **fields: Any) -> None: ...


@dataclass
class Connection:
    """A connected charge point, as the rest of the system sees it."""

    cp_id: str
    version: str  # "1.6" | "2.0.1"
    cp: Any  # the ocpp ChargePoint object (cp16.CP16 or cp201.CP201)
    config: ChargePointConfig
    accepted: bool = True
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    vendor: str | None = None
    model: str | None = None
    connectors: dict[int, str] = field(default_factory=dict)  # connector -> status
    limits: dict[int, Decimal] = field(default_factory=dict)  # connector -> last accepted A
    # What the charger applies, as far as we know (only accepted profiles count): the
    # TxProfile of a transaction, else the connector's or the whole charger's (0)
    # TxDefaultProfile. Load management counts these as the limits in force.
    tx_limits: dict[int, Decimal] = field(default_factory=dict)  # transaction id -> A
    default_limits: dict[int, Decimal] = field(default_factory=dict)  # connector -> A
    draw: dict[int, dict[int, Decimal]] = field(default_factory=dict)  # connector->phase->A
    # Every change of ``draw``, when: load management subtracts from a main meter reading
    # what the chargers drew at that reading's time (a car that stopped a moment ago is
    # still in the reading, its draw already gone: the base load would look that much higher).
    draw_log: list[tuple[datetime, dict[int, dict[int, Decimal]]]] = field(
        default_factory=list)
    profile_rejects: int = 0
    profiles_disabled: bool = False
    rate_unit: str | None = None  # "A" or "W" once known

    def set_draw(self, connector: int | None, draw: dict[int, Decimal] | None) -> None:
        """A connector's new draw (None: it draws nothing; connector None: all of them)."""
        if connector is None:
            self.draw.clear()
        elif draw is None:
            self.draw.pop(connector, None)
        else:
            self.draw[connector] = draw
        self.draw_log.append((datetime.now(UTC), dict(self.draw)))
        del self.draw_log[:-DRAW_LOG]

    @property
    def managed(self) -> bool:
        """Under load management: an EV charger we accepted that takes our profiles. A relay
        box, or a charger that refuses profiles, is part of the base load."""
        return self.config.kind == "ev" and self.accepted and not self.profiles_disabled

    def limit_in_force(self, connector: int, tx_id: int | None) -> Decimal | None:
        """The current this charger allows a session now: the TxProfile it accepted for the
        transaction, else a TxDefaultProfile; None when it accepted none (then it may draw
        up to its own maximum)."""
        for amps in (self.tx_limits.get(tx_id) if tx_id is not None else None,
                     self.default_limits.get(connector), self.default_limits.get(0)):
            if amps is not None:
                return amps
        return None

    def draw_at(self, at: datetime) -> dict[int, dict[int, Decimal]]:
        """``draw`` as it was at ``at`` (nothing before the first change it reported)."""
        before = [d for ts, d in self.draw_log if ts <= at]
        if before:
            return before[-1]
        return self.draw_log[0][1] if len(self.draw_log) == DRAW_LOG else {}


class Core:
    def __init__(self, cfg: OcppConfig, sink: Sink, state_path: str) -> None:
        self.cfg = cfg
        self.sink = sink
        self.store = StateStore(state_path)
        self.badges = BadgeList(cfg.badges)
        cached = self.store.get("cloud_badges")
        if cached is not None:
            self.badges.load_cloud(cached)
        self.connections: dict[str, Connection] = {}
        # Chargers answered Pending: kept in memory only (no row, no uplinked event per
        # attempt) until the installer lists them; the most recent PENDING_KEPT ids.
        self.pending: dict[str, dict[str, Any]] = {}
        self.unknown_seen = Throttle(cfg.limits.log_interval)
        self.on_change: Callable[[], None] = lambda: None  # set by load management
        self.on_boot: Callable[[Connection], Awaitable[None]] | None = None  # by the service
        self._tasks: set[asyncio.Task[Any]] = set()
        self._calls: set[asyncio.Task[Any]] = set()

    # -- charger configuration ---------------------------------------------------------------

    def charger_config(self, cp_id: str) -> ChargePointConfig | None:
        """The configured charge point, a default one if unknown chargers are let in."""
        c = self.cfg.charge_point(cp_id)
        if c is None and self.cfg.security.unknown_chargers != "reject":
            # The handshake checked the id (OCPP identifier rules, wider than the site
            # file's pattern for listed ids): taken as it is, defaults for the rest.
            c = ChargePointConfig.model_construct(id=cp_id)
        return c

    def is_known(self, cp_id: str) -> bool:
        return self.cfg.charge_point(cp_id) is not None

    # -- events and sessions to the sink --------------------------------------------------------

    def event(self, kind: str, severity: str = "info", **fields: Any) -> None:
        """Fire-and-forget event into the sink (a worker thread does the fsync)."""
        log.info("ocpp." + kind, severity=severity, **fields)
        self._spawn(asyncio.to_thread(self.sink.append_event, kind, severity=severity, **fields))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ocpp.background_failed", error=repr(task.exception()))

    def spawn_call(self, coro: Any) -> None:
        """A background exchange with a charger: cancelled, not awaited, at shutdown."""
        task = asyncio.ensure_future(coro)
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def drain(self) -> None:
        """At shutdown: abandon charger exchanges, finish writes to the sink."""
        for t in list(self._calls):
            t.cancel()
        await asyncio.gather(*list(self._calls), return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def record(self, tx: Tx) -> SessionRecord:
        return session_record(self.store, tx, self.cfg.charge_point(tx.cp_id))

    async def report(self, tx: Tx) -> None:
        """Hand one session report to the sink; remember it went, so a restart resends
        only what the sink never got."""
        payload = self.record(tx).to_payload()
        await asyncio.to_thread(self.sink.append, STREAM_SESSIONS, [payload])
        self.store.mark_reported(tx.id, tx.status)

    async def report_pending(self) -> int:
        """Completed sessions whose final report did not reach the sink (e.g. a crash)."""
        txs = self.store.unreported_completed()
        for tx in txs:
            await self.report(tx)
        return len(txs)

    async def report_running(self) -> int:
        txs = self.store.open_txs()
        for tx in txs:
            await self.report(tx)
        return len(txs)

    # -- authorization -----------------------------------------------------------------------

    def authorize(self, conn: Connection, raw_badge: str) -> Decision:
        d = self.badges.decide(raw_badge, conn.config.badge_format)
        if d.status != "Accepted":
            self.event("badge_refused", severity="warning", charge_point=conn.cp_id,
                       badge=d.badge, raw=raw_badge, status=d.status)
        return d

    # -- transactions ------------------------------------------------------------------------

    def start_tx(self, conn: Connection, *, connector: int, badge: str | None,
                 account: str | None, ts: datetime, meter_start: Decimal,
                 ext_id: str | None = None, flags: list[str] | None = None) -> Tx:
        tx, created = self.store.start_tx(
            cp_id=conn.cp_id, connector=connector, kind=conn.config.kind, badge=badge,
            account=account, start_ts=ts, meter_start=meter_start, ext_id=ext_id, flags=flags)
        if created:
            log.info("ocpp.tx_started", charge_point=conn.cp_id, tx=tx.id, connector=connector,
                     badge=badge)
            self.on_change()
        else:
            log.info("ocpp.tx_start_resent", charge_point=conn.cp_id, tx=tx.id)
        return tx

    def add_values(self, conn: Connection, tx: Tx | None, connector: int,
                   values: list[MeterValue]) -> None:
        draw = currents(values)
        if draw:
            conn.set_draw(connector, draw)
        if tx is None:
            return
        self.store.add_meter_values(tx.id, [v.row() for v in values])
        reg = energy_register(values)
        if reg is not None:
            self.store.set_last_meter(tx.id, reg[0], reg[1])

    def add_signed(self, conn: Connection, tx: Tx | None, signed: list[SignedIn],
                   source: str) -> None:
        """Keep a message's signed values with its transaction, exactly as sent; a public
        key sent along is pinned at first use, and a different one later is an alarm."""
        if not signed:
            return
        if tx is None:
            self.event("signed_value_without_transaction", severity="warning",
                       charge_point=conn.cp_id, source=source, count=len(signed))
            return
        flags = list(tx.flags)
        for s in signed:
            # one alarm per transaction, however many messages carry the new key
            if s.public_key and "ocmf_key_changed" not in flags \
                    and not self._key_ok(conn, tx, s.public_key):
                flags.append("ocmf_key_changed")
        refused = self.store.add_signed(tx.id, [
            {"ts": s.ts.isoformat(), "context": s.context, "source": source, "data": s.data,
             "encoding": s.encoding, "signing_method": s.signing_method,
             "public_key": s.public_key} for s in signed], ocmf.DOCS_MAX)
        if refused:
            flags.append("signed_values_dropped")
        if flags != tx.flags:
            self.store.set_flags(tx.id, flags)

    def _key_ok(self, conn: Connection, tx: Tx, sent: str) -> bool:
        """Whether a key the charger sent is the one configured or pinned for it (pinned
        now when there is neither)."""
        configured = conn.config.public_key
        pinned = configured or self.store.get(f"ocmf_key/{conn.cp_id}")
        if pinned is None:
            try:
                self.store.put(f"ocmf_key/{conn.cp_id}", key_hex(sent))
            except OcmfError as exc:
                self.event("ocmf_key_unreadable", severity="warning", charge_point=conn.cp_id,
                           error=str(exc))
                return False
            self.event("ocmf_key_pinned", charge_point=conn.cp_id,
                       fingerprint=ocmf.fingerprint(sent))
            return True
        if same_key(pinned, sent):
            return True
        self.event("ocmf_key_changed", severity="alarm", charge_point=conn.cp_id,
                   transaction=tx.session_id, expected=ocmf.fingerprint(pinned),
                   sent=_fingerprint_or_none(sent),
                   configured=configured is not None)
        return False

    def public_key(self, cp_id: str) -> str | None:
        """The key a charger's signatures are checked with: configured, else pinned."""
        c = self.cfg.charge_point(cp_id)
        return (c.public_key if c is not None else None) or self.store.get(f"ocmf_key/{cp_id}")

    async def stop_tx(self, conn: Connection, tx: Tx, *, ts: datetime, meter_stop: Decimal,
                      reason: str | None, flags: list[str]) -> None:
        if tx.status == "completed" and "closed_after_reboot" not in tx.flags:
            log.info("ocpp.tx_stop_resent", charge_point=conn.cp_id, tx=tx.id)
            return
        all_flags = [f for f in tx.flags if f != "closed_after_reboot"] + flags
        if tx.status == "completed":
            all_flags.append("stop_after_auto_close")  # the charger's real stop won
        if meter_stop < tx.meter_start:
            all_flags.append("meter_decreased")
        self.store.stop_tx(tx.id, stop_ts=ts, meter_stop=meter_stop, reason=reason,
                           flags=all_flags)
        conn.set_draw(tx.connector, None)
        conn.tx_limits.pop(tx.id, None)
        log.info("ocpp.tx_stopped", charge_point=conn.cp_id, tx=tx.id, reason=reason)
        self.on_change()
        stored = self.store.tx(tx.id)
        assert stored is not None
        await self.report(stored)

    async def close_after_reboot(self, conn: Connection) -> None:
        """A charger that booted has lost its open transactions: close them with the last
        meter value we know, flagged, so billing sees them and a human can check."""
        for tx in self.store.open_txs(conn.cp_id):
            last = tx.last_meter if tx.last_meter is not None else tx.meter_start
            self.store.stop_tx(tx.id, stop_ts=tx.last_meter_ts or tx.start_ts, meter_stop=last,
                               reason="Reboot", flags=tx.flags + ["closed_after_reboot"])
            self.event("tx_closed_after_reboot", severity="warning", charge_point=conn.cp_id,
                       transaction=tx.session_id, meter_stop_wh=str(last))
            stored = self.store.tx(tx.id)
            assert stored is not None
            await self.report(stored)
        conn.set_draw(None, None)
        conn.tx_limits.clear()  # its transactions are closed
        self.on_change()

    async def after_boot(self, conn: Connection) -> None:
        if self.on_boot is not None:
            await self.on_boot(conn)

    def keep_raw(self, conn_id: str, action: str, raw: str, problems: list[str]) -> None:
        conn = self.connections.get(conn_id)
        if conn is not None and not conn.accepted:  # a pending charger stores nothing
            if self.unknown_seen.due("nonconformant"):
                log.warning("ocpp.pending_nonconformant", charge_point=conn_id, action=action,
                            problems=problems[:2])
            return
        self.store.keep_raw(conn_id, action, raw[:RAW_KEPT], problems[:20])
        log.warning("ocpp.nonconformant", charge_point=conn_id, action=action,
                    problems=problems[:5])

    def pending_booted(self, cp_id: str, info: dict[str, Any]) -> None:
        """An unknown charger booted and was answered Pending: remembered in memory, and
        reported (log and one uplinked event) at most once per interval for all of them."""
        self.pending.pop(cp_id, None)
        self.pending[cp_id] = info
        while len(self.pending) > PENDING_KEPT:
            del self.pending[next(iter(self.pending))]
        n = self.unknown_seen.due("unknown_charger")
        if n:
            self.event("unknown_charger", severity="warning", charge_point=cp_id,
                       boots_since_last=n, pending=sorted(self.pending)[:20])

    def update_badges(self, payload: dict[str, Any]) -> None:
        self.badges.load_cloud(payload)  # raises ValueError before changing anything
        self.store.put("cloud_badges", payload)


def _fingerprint_or_none(key: str) -> str | None:
    try:
        return ocmf.fingerprint(key)
    except OcmfError:
        return None


def session_record(store: StateStore, tx: Tx,
                   cp: ChargePointConfig | None = None) -> SessionRecord:
    """A transaction as the session report the buffer's ``sessions`` stream carries (also
    the gateway's local RFID relay points', so the cloud bills both alike). A completed
    session's signed values are checked here (``ocmf``) against the charger's configured
    or pinned key."""
    mv = [SessionMeterValue(ts=datetime.fromisoformat(r["ts"]), measurand=r["measurand"],
                            value=Decimal(r["value"]), unit=r["unit"],
                            phase=r["phase"] or None, context=r["context"] or None)
          for r in store.meter_values(tx.id)]
    last = tx.meter_stop if tx.status == "completed" else tx.last_meter
    end = tx.stop_ts if tx.status == "completed" else tx.last_meter_ts
    energy = last - tx.meter_start if last is not None else None
    signed = [SignedMeterValue(ts=datetime.fromisoformat(r["ts"]), context=r["context"],
                               source=r["source"], data=r["data"], encoding=r["encoding"],
                               signing_method=r["signing_method"], public_key=r["public_key"])
              for r in store.signed_values(tx.id)]
    calibrated = bool(cp is not None and cp.calibrated)
    key = (cp.public_key if cp is not None else None) or store.get(f"ocmf_key/{tx.cp_id}")
    check = None
    flags = list(tx.flags)
    if tx.status == "completed" and (signed or calibrated):
        result = ocmf.verify_session(
            [ocmf.SignedDoc(s.context, s.data, s.encoding, s.public_key) for s in signed],
            key, calibrated=calibrated, energy_wh=energy,
            meter_serial=cp.meter_serial if cp is not None else None, badge=tx.badge,
            start=tx.start_ts, stop=tx.stop_ts)
        check = result.to_dict()
        if result.status != ocmf.VERIFIED:
            flags.append(f"ocmf_{result.status}")
    return SessionRecord(
        session_id=tx.session_id, charge_point=tx.cp_id, connector=tx.connector,
        kind=tx.kind,  # type: ignore[arg-type]
        badge=tx.badge, account=tx.account, start=tx.start_ts, stop=tx.stop_ts,
        meter_start_wh=tx.meter_start, meter_stop_wh=last, energy_wh=energy,
        duration_s=int((end - tx.start_ts).total_seconds()) if end else None,
        stop_reason=tx.stop_reason, meter_values=mv, flags=flags,
        status=tx.status,  # type: ignore[arg-type]
        calibrated=calibrated, signed_values=signed, ocmf=check,
        public_key=key if signed else None,
    )
