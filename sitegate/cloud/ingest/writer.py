"""MQTT message -> database, idempotently; answers with the acks to publish.

One message, one transaction: the rows (``ON CONFLICT DO NOTHING`` on gateway, buffer
epoch and sequence, so a batch delivered twice changes nothing), the batch's range, the
merged contiguous high-water mark of that (gateway, stream, epoch), and for sessions the
upserted current report per session (``session_latest``) commit together; only then is
the ack (carrying the epoch) published. A message that
breaks the contract goes to ``dead_letters`` with the reason and never stops ingest; if
its envelope still names a sequence range, that range is acknowledged so the gateway does
not resend it forever (the rows stay in the dead letter for inspection).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError

from sitegate.cloud.store import tables as t
from sitegate.sync import protocol as p

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 1024 * 1024
DEAD_LETTER_KEEP = 2 * MAX_MESSAGE_BYTES  # bytes of a refused message kept for inspection


@dataclass(frozen=True, slots=True)
class Plausibility:
    """Times a stored row may carry. ``future``: how far ahead of the cloud's clock (a
    gateway's clock runs a little fast, never a year). ``backfill``: how far before the
    gateway was enrolled, or first seen if it has no identity (a gateway may buffer offline
    for a long time, and before its enrolment, but not before it existed)."""

    future: timedelta = timedelta(days=1)
    backfill: timedelta = timedelta(days=10 * 366)


# The time columns of each stream's rows.
_TIME_COLUMNS = {"readings": ("ts", "read_at"), "sessions": ("started_at", "stopped_at"),
                 "events": ("ts",)}

_ITEM_ADAPTERS = {s: TypeAdapter(list[m]) for s, m in p.ITEM_MODELS.items()}  # type: ignore[valid-type]


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes


def _utc(d: datetime | None) -> datetime | None:
    return d.astimezone(UTC) if d is not None else None


class Writer:
    """Stores what gateways send. Thread-safe as far as the engine is (one per process)."""

    def __init__(self, engine: Engine, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 plausible: Plausibility = Plausibility()) -> None:
        self.engine = engine
        self.max_message_bytes = max_message_bytes
        self.plausible = plausible
        self.pg = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self.pg else sqlite.insert

    # -- entry point -------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        """Process one message; returns the acks to publish once this returned.

        Whatever the message makes go wrong ends in ``dead_letters`` with the reason; only
        the database being unreachable is raised (the gateway resends, nothing is lost)."""
        try:
            gateway_id, leaf = p.parse_topic(topic)
        except p.ProtocolError as exc:
            self.dead_letter(topic, str(exc), payload)
            return []
        try:
            if leaf in p.STREAMS:
                return self._batch(topic, gateway_id, leaf, payload)
            if leaf == p.LEAF_STATUS:
                self._status(topic, gateway_id, payload)
            return []
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # noqa: BLE001 - a value the store refused, or our bug
            reason = f"not stored: {type(exc).__name__}: {str(exc)[:500]}"
            log.exception("ingest.not_stored", topic=topic)
            if leaf in p.STREAMS:
                return self._reject(topic, gateway_id, leaf, payload, reason)
            self.dead_letter(topic, reason, payload)
            return []

    # -- uplink batches ------------------------------------------------------------------

    def _batch(self, topic: str, gateway_id: str, stream: str, payload: bytes) -> list[Outgoing]:
        if len(payload) > self.max_message_bytes:
            return self._reject(topic, gateway_id, stream, payload,
                                f"oversized: {len(payload)} bytes > {self.max_message_bytes}")
        try:
            batch = p.decode_batch(payload)
        except p.ProtocolError as exc:
            return self._reject(topic, gateway_id, stream, payload, f"bad batch: {exc}")
        if batch.stream != stream:
            return self._reject(topic, gateway_id, stream, payload,
                                f"batch of {batch.stream!r} on the {stream!r} topic")
        upto = self.store_batch(gateway_id, batch, topic)
        return [self._ack(gateway_id, stream, upto, batch.first, batch.last, batch.epoch)]

    def _reject(
        self, topic: str, gateway_id: str, stream: str, payload: bytes, reason: str
    ) -> list[Outgoing]:
        rng = p.batch_range(payload) if len(payload) <= 16 * self.max_message_bytes else None
        if rng is None or rng[0] != stream:
            self.dead_letter(topic, reason, payload)
            return []
        _, epoch, first, last = rng
        try:
            with self.engine.begin() as conn:
                self._dead_letter(conn, topic, f"{reason} (epoch {epoch} seq {first}..{last} "
                                  "acknowledged)", payload)
                upto = self._advance(conn, gateway_id, stream, epoch, first, last)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a range the store cannot hold
            self.dead_letter(topic, f"{reason} (range not acknowledged: {exc!s:.200})",
                             payload)
            return []
        return [self._ack(gateway_id, stream, upto, first, last, epoch)]

    def store_batch(self, gateway_id: str, batch: p.Batch, topic: str = "") -> int:
        """Write a decoded batch; returns the stream's contiguous mark after it."""
        now = datetime.now(UTC)
        rows, bad = self._rows(gateway_id, batch, now)
        table = t.STREAM_TABLES[batch.stream]
        with self.engine.begin() as conn:
            upto = self._lock_mark(conn, gateway_id, batch.stream, batch.epoch, now)
            if batch.last > upto:  # else a resend of committed rows: nothing to write
                rows = self._plausible_only(conn, gateway_id, batch, rows, bad, now)
                if rows:
                    conn.execute(
                        self._insert(table).on_conflict_do_nothing(
                            index_elements=["gateway_id", "epoch", "seq"]),
                        [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
                    if batch.stream == p.STREAM_SESSIONS:
                        self._upsert_latest(conn, rows)
                if bad:
                    self._dead_letter(conn, topic or p.topic(gateway_id, batch.stream),
                                      *_bad_items_letter(batch, bad))
                upto = self._advance(conn, gateway_id, batch.stream, batch.epoch, batch.first,
                                     batch.last, upto, now)
            self._seen(conn, gateway_id, now)
        if bad:
            log.warning("ingest.bad_items", gateway=gateway_id, stream=batch.stream,
                        count=len(bad), first_reason=bad[0][1])
        return upto

    def _rows(
        self, gateway_id: str, batch: p.Batch, now: datetime
    ) -> tuple[list[dict[str, Any]], list[tuple[int, str, Any]]]:
        adapter = _ITEM_ADAPTERS[batch.stream]
        bad: list[tuple[int, str, Any]] = []
        try:
            items = list(enumerate(adapter.validate_python(batch.items)))
        except ValidationError:
            # Find the bad ones; the good ones in the same batch are stored all the same.
            items = []
            model = p.ITEM_MODELS[batch.stream]
            for i, raw in enumerate(batch.items):
                try:
                    items.append((i, model.model_validate(raw)))
                except ValidationError as exc:
                    bad.append((batch.first + i, p._short(exc), raw))
        convert = getattr(self, f"_{batch.stream}_row")
        rows = [convert(gateway_id, batch.first + i, it, batch.items[i], now) for i, it in items]
        for row in rows:
            row["epoch"] = batch.epoch
        return rows, bad

    def _plausible_only(
        self, conn: Connection, gateway_id: str, batch: p.Batch, rows: list[dict[str, Any]],
        bad: list[tuple[int, str, Any]], now: datetime,
    ) -> list[dict[str, Any]]:
        """The rows whose times are plausible; the others join ``bad`` (never stored, so
        never billed)."""
        # An enrolled gateway existed from its enrolment (a replacement under a known id
        # too); one without an identity (plain MQTT) from when it was first seen.
        since = conn.execute(select(t.gateway_identities.c.enrolled_at).where(
            t.gateway_identities.c.gateway_id == gateway_id)).scalar_one_or_none()
        if since is None:
            since = conn.execute(select(t.gateways.c.first_seen).where(
                t.gateways.c.gateway_id == gateway_id)).scalar_one_or_none()
        earliest = (_utc(since.replace(tzinfo=since.tzinfo or UTC)) if since else now) \
            - self.plausible.backfill
        latest = now + self.plausible.future
        keep = []
        for row in rows:
            wrong = [f"{c} {row[c].isoformat()} is "
                     + ("in the future" if row[c] > latest else "before the gateway existed")
                     for c in _TIME_COLUMNS[batch.stream]
                     if row[c] is not None and not earliest <= row[c] <= latest]
            if wrong:
                bad.append((row["seq"], "; ".join(wrong), batch.items[row["seq"] - batch.first]))
            else:
                keep.append(row)
        bad.sort(key=lambda b: b[0])
        return keep

    @staticmethod
    def _readings_row(
        gw: str, seq: int, it: p.ReadingItem, _raw: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        return {
            "gateway_id": gw, "seq": seq, "meter_id": it.meter_id, "ts": _utc(it.ts),
            "quantity": it.quantity, "value": it.value, "unit": it.unit,
            "quality": it.quality, "flags": json.dumps(it.flags), "read_at": _utc(it.read_at),
            "received_at": now,
        }

    @staticmethod
    def _sessions_row(
        gw: str, seq: int, it: p.SessionItem, raw: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        return {
            "gateway_id": gw, "seq": seq, "payload": json.dumps(raw, separators=(",", ":")),
            "session_id": it.session_id, "charge_point_id": it.charge_point,
            "connector": it.connector, "badge": it.badge, "started_at": _utc(it.start),
            "stopped_at": _utc(it.stop),
            "energy_wh": str(it.energy_wh) if it.energy_wh is not None else None,
            "received_at": now, "_completed": raw.get("status") == "completed",
        }

    @staticmethod
    def _events_row(
        gw: str, seq: int, it: p.EventItem, raw: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        return {
            "gateway_id": gw, "seq": seq, "ts": _utc(it.ts), "kind": it.kind,
            "severity": it.severity, "payload": json.dumps(raw, separators=(",", ":")),
            "received_at": now,
        }

    # -- the current report per session ---------------------------------------------------

    def _upsert_latest(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Keep ``session_latest`` at the best report of each session: completed beats
        running, then the higher epoch (epochs sort by their buffer's creation time), then
        the higher seq. The row in the table only changes for a better report, so a resend
        or a late running report never replaces a completed one."""
        best: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["session_id"] is None:
                continue
            have = best.get(row["session_id"])
            if have is None or _rank(row) > _rank(have):
                best[row["session_id"]] = row
        if not best:
            return
        values = [{k: v for k, v in r.items() if k != "_completed"} | {"completed": r["_completed"]}
                  for r in best.values()]
        ins = self._insert(t.session_latest)
        cur, new = t.session_latest.c, ins.excluded
        better = or_(
            and_(new.completed, not_(cur.completed)),
            and_(new.completed == cur.completed,
                 or_(new.epoch > cur.epoch, and_(new.epoch == cur.epoch, new.seq > cur.seq))),
        )
        set_ = {c: new[c] for c in ("completed", "epoch", "seq", "payload", "charge_point_id",
                                    "connector", "badge", "started_at", "stopped_at",
                                    "energy_wh", "received_at")}
        # One statement per session: a multi-row upsert may not touch one key twice (PG).
        for v in values:
            conn.execute(ins.values(v).on_conflict_do_update(
                index_elements=["gateway_id", "session_id"], set_=set_, where=better))

    # -- the high-water mark -------------------------------------------------------------

    def _lock_mark(self, conn: Connection, gateway_id: str, stream: str, epoch: str,
                   now: datetime) -> int:
        # A write first: on SQLite it takes the database write lock before anything is read
        # (no stale snapshot between two ingest processes); on PostgreSQL FOR UPDATE
        # serializes batches of one gateway stream, so two processes never lose a merge.
        conn.execute(self._insert(t.acks).values(
            gateway_id=gateway_id, stream=stream, epoch=epoch, upto=0, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["gateway_id", "stream", "epoch"]))
        q = select(t.acks.c.upto).where(t.acks.c.gateway_id == gateway_id,
                                        t.acks.c.stream == stream, t.acks.c.epoch == epoch)
        if self.pg:
            q = q.with_for_update()
        return int(conn.execute(q).scalar_one())

    def _advance(
        self, conn: Connection, gateway_id: str, stream: str, epoch: str, first: int,
        last: int, upto: int | None = None, now: datetime | None = None,
    ) -> int:
        now = now or datetime.now(UTC)
        if upto is None:
            upto = self._lock_mark(conn, gateway_id, stream, epoch, now)
        if last <= upto:
            return upto
        r = t.ack_ranges.c
        this = and_(r.gateway_id == gateway_id, r.stream == stream, r.epoch == epoch)
        if first <= upto + 1 and not self._has_ranges(conn, this):
            new = last  # the common case: in order, nothing parked above the mark
        else:
            ins = self._insert(t.ack_ranges).values(
                gateway_id=gateway_id, stream=stream, epoch=epoch, first=first, last=last)
            greatest = func.greatest if self.pg else func.max
            conn.execute(ins.on_conflict_do_update(
                index_elements=["gateway_id", "stream", "epoch", "first"],
                set_={"last": greatest(r["last"], ins.excluded["last"])},
            ))
            parked = conn.execute(
                select(r["first"], r["last"]).where(this).order_by(r["first"])).all()
            new = _merge(upto, parked)
            conn.execute(delete(t.ack_ranges).where(this, r["last"] <= new))
        if new != upto:
            conn.execute(update(t.acks).where(
                t.acks.c.gateway_id == gateway_id, t.acks.c.stream == stream,
                t.acks.c.epoch == epoch,
            ).values(upto=new, updated_at=now))
        return new

    @staticmethod
    def _has_ranges(conn: Connection, where: ColumnElement[bool]) -> bool:
        return conn.execute(
            select(t.ack_ranges.c["first"]).where(where).limit(1)).first() is not None

    @staticmethod
    def _ack(gateway_id: str, stream: str, upto: int, first: int, last: int,
             epoch: str = p.LEGACY_EPOCH) -> Outgoing:
        ack = p.Ack(stream=stream, epoch=epoch, upto=upto, first=first,  # type: ignore[arg-type]
                    last=last)
        return Outgoing(p.topic(gateway_id, p.LEAF_ACK), p.encode_ack(ack))

    # -- registry and dead letters -------------------------------------------------------------

    def _seen(self, conn: Connection, gateway_id: str, now: datetime,
              status: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"gateway_id": gateway_id, "first_seen": now, "last_seen": now,
                                  "online": True}
        set_: dict[str, Any] = {"last_seen": now}
        if status is not None:
            values["online"] = set_["online"] = status["state"] == p.STATUS_ONLINE
            values["status"] = set_["status"] = json.dumps(status, default=str)
            if status.get("applied_config_version") is not None:
                values["applied_config_version"] = set_["applied_config_version"] = (
                    status["applied_config_version"])
        ins = self._insert(t.gateways).values(**values)
        conn.execute(ins.on_conflict_do_update(index_elements=["gateway_id"], set_=set_))

    def _status(self, topic: str, gateway_id: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message
        if len(payload) > self.max_message_bytes:
            self.dead_letter(topic, f"oversized status: {len(payload)} bytes", payload)
            return
        try:
            status = p.decode_status(payload)
        except p.ProtocolError as exc:
            self.dead_letter(topic, f"bad status: {exc}", payload)
            return
        with self.engine.begin() as conn:
            self._seen(conn, gateway_id, datetime.now(UTC), status.model_dump(mode="json"))
        log.info("ingest.status", gateway=gateway_id, state=status.state)

    def dead_letter(self, topic: str, reason: str, payload: bytes) -> None:
        with self.engine.begin() as conn:
            self._dead_letter(conn, topic, reason, payload)

    @staticmethod
    def _dead_letter(conn: Connection, topic: str, reason: str, payload: bytes) -> None:
        log.warning("ingest.dead_letter", topic=topic, reason=reason[:300], bytes=len(payload))
        if len(payload) > DEAD_LETTER_KEEP:  # what the broker let through, not what we keep
            reason += f" [payload of {len(payload)} bytes cut to its first {DEAD_LETTER_KEEP}]"
            payload = payload[:DEAD_LETTER_KEEP]
        conn.execute(t.dead_letters.insert().values(
            received_at=datetime.now(UTC), topic=topic, reason=reason[:4000], payload=payload))


def _bad_items_letter(batch: p.Batch, bad: list[tuple[int, str, Any]]) -> tuple[str, bytes]:
    """One dead letter for all refused items of a batch (not one each: a batch of 10,000
    bad items is one row): the first reasons, and every item with its seq and reason."""
    shown = "; ".join(f"seq {seq}: {reason}" for seq, reason, _ in bad[:3])
    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
    reason = f"{shown}{more} [{len(bad)} of {len(batch.items)} items refused, " \
             f"epoch {batch.epoch} seq {batch.first}..{batch.last} acknowledged]"
    payload = json.dumps([{"seq": seq, "reason": reason, "item": item}
                          for seq, reason, item in bad], default=str).encode()
    return reason, payload


def _rank(row: dict[str, Any]) -> tuple[bool, str, int]:
    return row["_completed"], row["epoch"], row["seq"]


def _merge(upto: int, parked: Sequence[Sequence[int]]) -> int:
    """The contiguous mark after ``upto`` given committed (first, last) ranges, sorted."""
    for first, last in parked:
        if first > upto + 1:
            break
        upto = max(upto, last)
    return upto
