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
from dataclasses import dataclass, field
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
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from sitegate.cloud.ingest import check
from sitegate.cloud.store import commissioning, partitions
from sitegate.cloud.store import tables as t
from sitegate.cloud.store.ingest_rows import Labels, insert_readings
from sitegate.cloud.store.tables import NO_FLAGS, QUALITY_IDS
from sitegate.sync import protocol as p

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 1024 * 1024
DEAD_LETTER_KEEP = 2 * MAX_MESSAGE_BYTES  # bytes of a refused message kept for inspection
SEEN_EVERY = timedelta(seconds=30)  # a gateway's last_seen, at most this often per process
PARTITIONS_EVERY = timedelta(hours=6)


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
        self._noted: dict[str, datetime] = {}  # when this process last wrote last_seen
        self._partitions_at: datetime | None = None
        self.labels = Labels(engine)  # epoch and unit ids of reading rows

    # -- entry points ------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        """Process one message; returns the acks to publish once this returned."""
        return self.handle_many([(topic, payload)])

    def handle_many(self, messages: Sequence[tuple[str, bytes]]) -> list[Outgoing]:
        """Process messages together: their rows, marks and statuses in one transaction;
        returns the acks to publish once this returned (after the commit).

        A batch wholly at or below its stream's mark is acknowledged without looking at
        its items (a resend costs a decode of the envelope). Whatever a message makes go
        wrong ends in ``dead_letters`` with the reason; when the shared transaction fails,
        each message is retried in its own, so one bad message never holds up the others.
        Only the database being unreachable is raised (nothing is acknowledged then, the
        gateways resend, nothing is lost)."""
        out: list[Outgoing] = []
        batches: list[_Incoming] = []
        statuses: dict[str, tuple[str, bytes, dict[str, Any]]] = {}
        for topic, payload in messages:
            try:
                gateway_id, leaf = p.parse_topic(topic)
            except p.ProtocolError as exc:
                self.dead_letter(topic, str(exc), payload)
                continue
            if leaf in p.STREAMS:
                head = p.batch_head(payload) if len(payload) <= self.max_message_bytes \
                    else None
                if head is not None and head[0] == leaf:  # items decoded only when needed
                    batches.append(_Incoming(topic, gateway_id, payload, *head, None))
                    continue
                got = self._decode(topic, gateway_id, leaf, payload)
                if isinstance(got, _Incoming):
                    batches.append(got)
                else:
                    out += got
            elif leaf == p.LEAF_STATUS:
                status = self._decode_status(topic, payload)
                if status is not None:
                    statuses[gateway_id] = (topic, payload, status)  # the latest one counts
        if not batches and not statuses:
            return out
        now = datetime.now(UTC)
        self._partitions(now)
        marks, since = self._look(batches, now)
        self.labels.learn_epochs((b.gateway_id, b.epoch) for b in batches
                                 if b.stream == p.STREAM_READINGS and b.last > marks.get(b.key, 0))
        todo = []
        for b in batches:
            if b.last <= marks.get(b.key, 0):  # committed already: ack, items unread
                out.append(self._ack(b.gateway_id, b.stream, marks[b.key], b.first, b.last,
                                     b.epoch))
                continue
            if b.items is None:
                got = self._decode(b.topic, b.gateway_id, b.stream, b.payload)
                if not isinstance(got, _Incoming):
                    out += got
                    continue
                b = got
            self._check(b, marks.get(b.key, 0), since.get(b.gateway_id), now)
            todo.append(b)
        if not todo and not statuses:
            return out
        try:
            with self.engine.begin() as conn:
                acks = self._commit(conn, todo, statuses, now)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # noqa: BLE001 - a value the store refused, or our bug
            if len(todo) + len(statuses) == 1:
                return out + self._not_stored(todo, statuses, exc)
            log.warning("ingest.group_failed", messages=len(todo) + len(statuses),
                        error=f"{type(exc).__name__}: {str(exc)[:200]}")
            for b in todo:
                out += self.handle(b.topic, b.payload)
            for topic, payload, _ in statuses.values():
                out += self.handle(topic, payload)
            return out
        for b in todo:
            if b.bad:
                log.warning("ingest.bad_items", gateway=b.gateway_id, stream=b.stream,
                            count=len(b.bad), first_reason=b.bad[0][1])
        for gateway_id, (_, _, status) in statuses.items():
            log.info("ingest.status", gateway=gateway_id, state=status["state"])
        return out + acks

    def _partitions(self, now: datetime) -> None:
        """PostgreSQL: this month's and the next months' readings partitions exist (made
        ahead at start and every PARTITIONS_EVERY; rows of a month without one would go to
        the default partition)."""
        if not self.pg or (self._partitions_at and now - self._partitions_at < PARTITIONS_EVERY):
            return
        with self.engine.begin() as conn:
            made = partitions.ensure(conn, now.date())
        self._partitions_at = now
        if made:
            log.info("ingest.partitions_made", partitions=made)

    def _not_stored(self, todo: list[_Incoming], statuses: dict[str, Any],
                    exc: Exception) -> list[Outgoing]:
        reason = f"not stored: {type(exc).__name__}: {str(exc)[:500]}"
        if todo:
            b = todo[0]
            log.warning("ingest.not_stored", topic=b.topic, reason=reason[:300])
            return self._reject(b.topic, b.gateway_id, b.stream, b.payload, reason)
        topic, payload, _ = next(iter(statuses.values()))
        log.warning("ingest.not_stored", topic=topic, reason=reason[:300])
        self.dead_letter(topic, reason, payload)
        return []

    # -- uplink batches ------------------------------------------------------------------

    def _decode(self, topic: str, gateway_id: str, stream: str,
                payload: bytes) -> _Incoming | list[Outgoing]:
        if len(payload) > self.max_message_bytes:
            return self._reject(topic, gateway_id, stream, payload,
                                f"oversized: {len(payload)} bytes > {self.max_message_bytes}")
        if stream == p.STREAM_READINGS:  # the usual form, typed in one pass at C speed
            try:
                got = check.typed_readings(p.inflate(payload))
            except p.ProtocolError:
                got = None  # not inflatable: the general path says so
            if got is not None:
                return _Incoming(topic, gateway_id, payload, *got, typed=True)
        try:
            env = _envelope(payload)
        except p.ProtocolError as exc:
            return self._reject(topic, gateway_id, stream, payload, f"bad batch: {exc}")
        if env[0] != stream:
            return self._reject(topic, gateway_id, stream, payload,
                                f"batch of {env[0]!r} on the {stream!r} topic")
        return _Incoming(topic, gateway_id, payload, *env)

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

    def _look(self, batches: list[_Incoming], now: datetime
              ) -> tuple[dict[tuple[str, str, str], int], dict[str, datetime]]:
        """The committed marks of the batches' streams, read without a lock (a mark only
        grows: one read early is at worst low), and since when each gateway existed: its
        enrolment when it has an identity (a replacement under a known id too), else when
        it was first seen."""
        keys = sorted({b.key for b in batches})
        gws = sorted({b.gateway_id for b in batches})
        a, g, i_ = t.acks.c, t.gateways.c, t.gateway_identities.c
        marks: dict[tuple[str, str, str], int] = {}
        since: dict[str, datetime] = {}
        with self.engine.connect() as conn:
            for k in range(0, len(keys), 500):
                part = keys[k:k + 500]
                marks.update(((gw, s, e), int(u)) for gw, s, e, u in conn.execute(
                    select(a.gateway_id, a.stream, a.epoch, a.upto).where(
                        tuple_(a.gateway_id, a.stream, a.epoch).in_(part))))
            if any(b.last > marks.get(b.key, 0) for b in batches):  # else nothing is checked
                for k in range(0, len(gws), 500):
                    part = gws[k:k + 500]
                    for col, key in ((g.first_seen, g.gateway_id), (i_.enrolled_at,
                                                                     i_.gateway_id)):
                        for gw, when in conn.execute(select(key, col).where(key.in_(part))):
                            if when is not None:  # the enrolment, read second, wins
                                since[gw] = _utc(when.replace(tzinfo=when.tzinfo or UTC))
        return marks, since

    def _check(self, b: _Incoming, upto: int, since: datetime | None,
               now: datetime) -> None:
        """Fill ``b.rows`` with the items above ``upto`` that may be stored, ``b.bad``
        with the others and why (never stored, so never billed)."""
        earliest = (since or now) - self.plausible.backfill
        latest = now + self.plausible.future
        skip = max(0, upto - b.first + 1)  # items at or below the mark: committed already
        if b.stream == p.STREAM_READINGS:
            self._check_readings(b, skip, earliest, latest, now)
            return
        rows, bad = self._rows(b, skip, now)
        for row in rows:
            wrong = _implausible(row, _TIME_COLUMNS[b.stream], earliest, latest)
            if wrong:
                bad.append((row["seq"], wrong, b.items[row["seq"] - b.first]))
            else:
                b.rows.append(row)
        bad.sort(key=lambda x: x[0])
        b.bad = bad

    def _check_readings(self, b: _Incoming, skip: int, earliest: datetime,
                        latest: datetime, now: datetime) -> None:
        times = check.Times()
        epoch_id = self.labels.epoch(b.gateway_id, b.epoch)
        todo: Sequence[int] = range(skip, len(b.items))
        if b.typed:
            todo = self._typed_readings(b, skip, times, earliest, latest, now, epoch_id)
        rows, bad, items = b.rows, b.bad, b.items
        gw, first, units, qualities = b.gateway_id, b.first, self.labels.units, QUALITY_IDS
        for i in todo:  # the general checks, with the model's verdict and wording
            raw = _sent(items[i])
            try:
                meter, ts, qty, value, unit, quality, flags, read_at = check.reading(raw, times)
            except check.BadItem as exc:
                bad.append((first + i, str(exc), raw))
                continue
            if not earliest <= ts <= latest or (
                    read_at is not None and not earliest <= read_at <= latest):
                wrong = _implausible({"ts": ts, "read_at": read_at}, ("ts", "read_at"),
                                     earliest, latest)
                bad.append((first + i, wrong, raw))
                continue
            unit_id = units.get(unit)
            if unit_id is None:
                try:
                    unit_id = self.labels.unit(unit)
                except (OperationalError, InterfaceError):
                    raise
                except DBAPIError as exc:  # e.g. a NUL character PostgreSQL will not keep
                    bad.append((first + i, f"unit {unit!r} cannot be stored: "
                                f"{type(exc.orig).__name__}", raw))
                    continue
            flags_id = NO_FLAGS
            if flags:
                try:
                    flags_id = self.labels.flags(json.dumps(flags))
                except (OperationalError, InterfaceError):
                    raise
                except DBAPIError as exc:
                    bad.append((first + i, f"flags cannot be stored: {type(exc.orig).__name__}",
                                raw))
                    continue
            rows.append((ts, first + i, read_at, now, epoch_id, unit_id, flags_id,
                         qualities[quality], gw, meter, qty, value))
        if b.typed and bad:
            bad.sort(key=lambda x: x[0])

    def _typed_readings(self, b: _Incoming, skip: int, times: check.Times, earliest: datetime,
                        latest: datetime, now: datetime, epoch_id: int) -> list[int]:
        """The typed items (types, keys and lengths checked by the decode) that need no
        more than a plain, plausible time, a plain value, no flags and a known unit, made
        rows at once; the indexes of the others, for the general checks."""
        window: dict[str, datetime | None] = {}  # time text -> its time if plain, plausible

        def stamp(text: str) -> datetime | None:
            when = times[text]
            when = window[text] = when if when is not None and earliest <= when <= latest \
                else None
            return when

        rows, items, units, qualities = b.rows, b.items, self.labels.units, QUALITY_IDS
        append, value_ok, gw, first, get = rows.append, check.value_ok, b.gateway_id, b.first, \
            window.get
        slow: list[int] = []
        for i in range(skip, len(items)):
            it = items[i]
            ts, at, value = get(it.ts, _UNSEEN), it.read_at, it.value
            if ts is _UNSEEN:
                ts = stamp(it.ts)
            read_at = None
            if at is not None:
                read_at = get(at, _UNSEEN)
                if read_at is _UNSEEN:
                    read_at = stamp(at)
            unit_id = units.get(it.unit)
            if (ts is None or (read_at is None and at is not None) or unit_id is None
                    or it.flags or value_ok(value) is None):
                slow.append(i)
                continue
            append((ts, first + i, read_at, now, epoch_id, unit_id, NO_FLAGS,
                    qualities[it.quality], gw, it.meter_id, it.quantity, value))
        return slow

    def _rows(
        self, b: _Incoming, skip: int, now: datetime
    ) -> tuple[list[dict[str, Any]], list[tuple[int, str, Any]]]:
        """Sessions and events (few): through their pydantic models, as before."""
        adapter = _ITEM_ADAPTERS[b.stream]
        bad: list[tuple[int, str, Any]] = []
        raws = b.items[skip:]
        try:
            items = list(enumerate(adapter.validate_python(raws), skip))
        except ValidationError:
            # Find the bad ones; the good ones in the same batch are stored all the same.
            items = []
            model = p.ITEM_MODELS[b.stream]
            for i, raw in enumerate(raws, skip):
                try:
                    items.append((i, model.model_validate(raw)))
                except ValidationError as exc:
                    bad.append((b.first + i, p._short(exc), raw))
        convert = getattr(self, f"_{b.stream}_row")
        rows = []
        for i, it in items:
            try:
                row = convert(b.gateway_id, b.first + i, it, b.items[i], now)
            except OverflowError:
                bad.append((b.first + i, "a time out of range in UTC", b.items[i]))
                continue
            row["epoch"] = b.epoch
            rows.append(row)
        return rows, bad

    # -- the shared transaction ------------------------------------------------------------

    def _commit(self, conn: Connection, todo: list[_Incoming],
                statuses: dict[str, tuple[str, bytes, dict[str, Any]]],
                now: datetime) -> list[Outgoing]:
        """Lock the marks (sorted: two processes never wait on each other in a circle),
        write what is new, advance the marks, note the gateways; the acks to publish."""
        keys = sorted({b.key for b in todo})
        marks = self._lock_marks(conn, keys, now)
        parked = self._parked(conn, keys)
        readings: list[tuple[Any, ...]] = []
        by_key: dict[tuple[str, str, str], list[_Incoming]] = {}
        for b in sorted(todo, key=lambda x: (x.key, x.first)):
            by_key.setdefault(b.key, []).append(b)
        for key, group in by_key.items():
            upto = marks[key]
            ranges = parked.get(key, [])
            for b in group:
                if b.last <= upto:
                    continue
                done = [(f, last) for f, last in ranges if last >= b.first and f <= b.last]
                new = b.rows
                if b.first <= upto or done:  # committed meanwhile, in part: leave those out
                    new = [r for r in new if _seq(r) > upto
                           and not any(f <= _seq(r) <= last for f, last in done)]
                if b.stream == p.STREAM_READINGS:
                    readings += new
                elif new:
                    table = t.STREAM_TABLES[b.stream]
                    conn.execute(self._insert(table).on_conflict_do_nothing(
                        index_elements=["gateway_id", "epoch", "seq"]),
                        [{k: v for k, v in r.items() if not k.startswith("_")} for r in new])
                    if b.stream == p.STREAM_SESSIONS:
                        self._upsert_latest(conn, new)
                    elif b.stream == p.STREAM_EVENTS:  # gateways' commissioning reports
                        commissioning.record(conn, new)
                if b.bad:
                    self._dead_letter(conn, b.topic, *_bad_items_letter(b, b.bad))
                ranges = sorted([*ranges, (b.first, b.last)])
            new_upto = _merge(upto, ranges)
            self._save_mark(conn, key, upto, new_upto, parked.get(key, []), ranges, now)
            marks[key] = new_upto
        if readings:
            insert_readings(conn, readings)
        self._note_gateways(conn, sorted({b.gateway_id for b in todo} | set(statuses)),
                            statuses, now)
        return [self._ack(b.gateway_id, b.stream, marks[b.key], b.first, b.last, b.epoch)
                for b in todo]

    @staticmethod
    def _sessions_row(
        gw: str, seq: int, it: p.SessionRecord, raw: dict[str, Any], now: datetime
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

    def _lock_marks(self, conn: Connection, keys: list[tuple[str, str, str]],
                    now: datetime) -> dict[tuple[str, str, str], int]:
        """The marks of ``keys``, locked for this transaction, in key order. A write first:
        on SQLite it takes the database write lock before anything is read (no stale
        snapshot between two ingest processes); on PostgreSQL FOR UPDATE serializes the
        batches of one gateway stream, so two processes never lose a merge."""
        a = t.acks.c
        if not keys:
            return {}
        conn.execute(self._insert(t.acks).on_conflict_do_nothing(
            index_elements=["gateway_id", "stream", "epoch"]),
            [{"gateway_id": g, "stream": s, "epoch": e, "upto": 0, "updated_at": now}
             for g, s, e in keys])
        marks: dict[tuple[str, str, str], int] = {}
        for i in range(0, len(keys), 500):
            q = (select(a.gateway_id, a.stream, a.epoch, a.upto)
                 .where(tuple_(a.gateway_id, a.stream, a.epoch).in_(keys[i:i + 500]))
                 .order_by(a.gateway_id, a.stream, a.epoch))
            if self.pg:
                q = q.with_for_update()
            marks.update(((g, s, e), int(u)) for g, s, e, u in conn.execute(q))
        return marks

    @staticmethod
    def _parked(conn: Connection, keys: list[tuple[str, str, str]]
                ) -> dict[tuple[str, str, str], list[tuple[int, int]]]:
        """Committed ranges above the marks (a gap below them), per key."""
        r = t.ack_ranges.c
        out: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
        for i in range(0, len(keys), 500):
            q = select(r.gateway_id, r.stream, r.epoch, r["first"], r["last"]).where(
                tuple_(r.gateway_id, r.stream, r.epoch).in_(keys[i:i + 500]))
            for g, s, e, first, last in conn.execute(q):
                out.setdefault((g, s, e), []).append((int(first), int(last)))
        for ranges in out.values():
            ranges.sort()
        return out

    def _save_mark(self, conn: Connection, key: tuple[str, str, str], upto: int, new: int,
                   had: list[tuple[int, int]], ranges: list[tuple[int, int]],
                   now: datetime) -> None:
        """The mark moved from ``upto`` to ``new``; keep the ranges still above it."""
        gw, stream, epoch = key
        r = t.ack_ranges.c
        this = and_(r.gateway_id == gw, r.stream == stream, r.epoch == epoch)
        if new != upto:
            conn.execute(update(t.acks).where(
                t.acks.c.gateway_id == gw, t.acks.c.stream == stream, t.acks.c.epoch == epoch,
            ).values(upto=new, updated_at=now))
        if had and any(last <= new for _, last in had):
            conn.execute(delete(t.ack_ranges).where(this, r["last"] <= new))
        above = [(f, last) for f, last in ranges if last > new and (f, last) not in had]
        if above:
            ins = self._insert(t.ack_ranges)
            greatest = func.greatest if self.pg else func.max
            conn.execute(ins.on_conflict_do_update(
                index_elements=["gateway_id", "stream", "epoch", "first"],
                set_={"last": greatest(r["last"], ins.excluded["last"])}),
                [{"gateway_id": gw, "stream": stream, "epoch": epoch, "first": f, "last": last}
                 for f, last in _dedupe_first(above)])

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

    def _note_gateways(self, conn: Connection, gateway_ids: list[str],
                       statuses: dict[str, tuple[str, bytes, dict[str, Any]]],
                       now: datetime) -> None:
        """The registry: a status as it came; otherwise ``last_seen``, at most every
        SEEN_EVERY per gateway and process (not one write per batch)."""
        ins = self._insert(t.gateways)
        for gw in gateway_ids:
            values: dict[str, Any] = {"gateway_id": gw, "first_seen": now, "last_seen": now,
                                      "online": True}
            set_: dict[str, Any] = {"last_seen": now}
            got = statuses.get(gw)
            if got is None:
                noted = self._noted.get(gw)
                if noted is not None and now - noted < SEEN_EVERY:
                    continue
            else:
                status = got[2]
                values["online"] = set_["online"] = status["state"] == p.STATUS_ONLINE
                values["status"] = set_["status"] = json.dumps(status, default=str)
                if status.get("applied_config_version") is not None:
                    values["applied_config_version"] = set_["applied_config_version"] = (
                        status["applied_config_version"])
            conn.execute(ins.values(**values).on_conflict_do_update(
                index_elements=["gateway_id"], set_=set_))
            self._noted[gw] = now

    def _decode_status(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        if not payload:
            return None  # a cleared retained message
        if len(payload) > self.max_message_bytes:
            self.dead_letter(topic, f"oversized status: {len(payload)} bytes", payload)
            return None
        try:
            return p.decode_status(payload).model_dump(mode="json")
        except p.ProtocolError as exc:
            self.dead_letter(topic, f"bad status: {exc}", payload)
            return None

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


def _bad_items_letter(b: _Incoming, bad: list[tuple[int, str, Any]]) -> tuple[str, bytes]:
    """One dead letter for all refused items of a batch (not one each: a batch of 10,000
    bad items is one row): the first reasons, and every item with its seq and reason."""
    shown = "; ".join(f"seq {seq}: {reason}" for seq, reason, _ in bad[:3])
    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
    reason = f"{shown}{more} [{len(bad)} of {len(b.items)} items refused, " \
             f"epoch {b.epoch} seq {b.first}..{b.last} acknowledged]"
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


def _dedupe_first(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """One range per first seq (the longest): a multi-row upsert may not touch a key twice."""
    best: dict[int, int] = {}
    for first, last in ranges:
        best[first] = max(best.get(first, 0), last)
    return sorted(best.items())


_UNSEEN: Any = object()  # a time text not looked at yet


def _sent(item: Any) -> Any:
    """An item as it was sent (a typed one as its dict)."""
    return check.as_sent(item) if isinstance(item, check.Item) else item


def _seq(row: Any) -> int:
    return row[1] if isinstance(row, tuple) else row["seq"]


def _implausible(row: dict[str, Any], columns: Sequence[str], earliest: datetime,
                 latest: datetime) -> str:
    return "; ".join(f"{c} {row[c].isoformat()} is "
                     + ("in the future" if row[c] > latest else "before the gateway existed")
                     for c in columns if row[c] is not None and not earliest <= row[c] <= latest)


@dataclass(slots=True)
class _Incoming:
    """A batch whose envelope is sound, and what its items came to."""

    topic: str
    gateway_id: str
    payload: bytes
    stream: str
    epoch: str
    first: int
    last: int
    items: list[Any] | None  # None: only the head read so far
    typed: bool = False  # items are check.Item (the typed decode), not dicts
    rows: list[Any] = field(default_factory=list)
    bad: list[tuple[int, str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.gateway_id, self.stream, self.epoch


_ENVELOPE = frozenset(("v", "stream", "epoch", "first", "last", "items"))


def _envelope(payload: bytes) -> tuple[str, str, int, int, list[Any]]:
    """(stream, epoch, first, last, items) of a batch: plain checks on the usual form,
    else the Batch model (its lax forms and its wording of a refusal)."""
    data = p._loads(p.inflate(payload), p.BATCH_MAX_ITEMS)
    if type(data) is dict and data.keys() <= _ENVELOPE:
        stream, epoch = data.get("stream"), data.get("epoch", p.LEGACY_EPOCH)
        first, last, items = data.get("first"), data.get("last"), data.get("items")
        if (data.get("v", p.PROTOCOL_VERSION) == p.PROTOCOL_VERSION
                and type(data.get("v", 1)) is int and stream in p.STREAMS
                and type(epoch) is str and p._EPOCH_RE.match(epoch)
                and type(first) is int and type(last) is int and 1 <= first <= p.SEQ_MAX
                and 1 <= last <= p.SEQ_MAX and type(items) is list
                and len(items) == last - first + 1 <= p.BATCH_MAX_ITEMS
                and all(type(i) is dict for i in items)):
            return stream, epoch, first, last, items
    try:
        batch = p.Batch.model_validate(data)
    except ValidationError as exc:
        raise p.ProtocolError(p._short(exc)) from None
    return batch.stream, batch.epoch, batch.first, batch.last, batch.items
