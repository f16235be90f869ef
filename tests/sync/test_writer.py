"""The ingest writer against a real database: idempotence, the contiguous mark with batches
out of order, bad items, sessions and events columns, the registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from sitegate.cloud.ingest.writer import Writer
from sitegate.cloud.store import tables as t
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.sync import protocol as p

GW = "gw1"


def _reading(n: int) -> str:
    return json.dumps({"meter_id": "m1", "ts": f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}"
                       "+01:00", "quantity": "1-0:1.8.0", "value": f"{n}.125", "unit": "kWh",
                       "quality": "good"})


def _batch(first: int, last: int, stream: str = "readings") -> bytes:
    return p.encode_batch(stream, first, [_reading(n) for n in range(first, last + 1)])


def _engine(url: str) -> Engine:
    upgrade(url)
    return make_engine(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return _engine(str(tmp_path / "cloud.db"))
    return _engine(request.getfixturevalue("postgres_url"))


def _upto(out: list) -> int:
    return p.decode_ack(out[0].payload).upto


def test_out_of_order_and_duplicate_batches_give_one_contiguous_mark(engine: Engine) -> None:
    w = Writer(engine)
    topic = p.topic(GW, "readings")
    assert _upto(w.handle(topic, _batch(1, 10))) == 10
    assert _upto(w.handle(topic, _batch(21, 30))) == 10  # gap 11..20: mark held back
    assert _upto(w.handle(topic, _batch(21, 30))) == 10  # duplicate
    ack = p.decode_ack(w.handle(topic, _batch(11, 20))[0].payload)
    assert (ack.upto, ack.first, ack.last, ack.stream) == (30, 11, 20, "readings")
    assert _upto(w.handle(topic, _batch(1, 10))) == 30  # a late resend changes nothing
    with engine.connect() as conn:
        seqs = conn.execute(select(t.readings.c.seq).order_by(t.readings.c.seq)).scalars().all()
        parked = conn.execute(select(t.ack_ranges)).all()
        row = conn.execute(select(t.readings).where(t.readings.c.seq == 7)).mappings().one()
    assert seqs == list(range(1, 31))
    assert parked == []
    assert row["value"] == "7.125"
    # Stored in UTC: 00:00:07+01:00 is 23:00:07 the day before.
    assert row["ts"].replace(tzinfo=UTC) == datetime(2025, 12, 31, 23, 0, 7, tzinfo=UTC)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(8)), dups=st.lists(st.integers(0, 7), max_size=5))
def test_any_delivery_order_ends_at_the_full_mark(tmp_path_factory, order, dups) -> None:
    engine = _engine(str(tmp_path_factory.mktemp("w") / "c.db"))
    w = Writer(engine)
    topic = p.topic(GW, "readings")
    marks = [_upto(w.handle(topic, _batch(i * 5 + 1, i * 5 + 5))) for i in [*order, *dups]]
    assert marks == sorted(marks)  # never moves back
    assert marks[-1] == 40
    with engine.connect() as conn:
        assert conn.execute(select(t.readings.c.seq)).scalars().all().__len__() == 40


def test_bad_items_are_one_dead_letter_and_their_range_acknowledged(engine: Engine) -> None:
    w = Writer(engine)
    good = json.loads(_reading(1))
    items = [json.dumps(good), json.dumps({**good, "value": "NaN"}),
             json.dumps({**good, "ts": "2026-01-01T00:00:00"}), json.dumps(good)]
    out = w.handle(p.topic(GW, "readings"), p.encode_batch("readings", 1, items))
    assert _upto(out) == 4
    with engine.connect() as conn:
        assert conn.execute(select(t.readings.c.seq)).scalars().all() == [1, 4]
        (reason, payload), = conn.execute(select(t.dead_letters.c.reason,
                                                  t.dead_letters.c.payload)).all()
    assert reason.startswith("seq 2:") and "finite" in reason
    assert "seq 3:" in reason and "timezone" in reason and "2 of 4 items" in reason
    kept = json.loads(payload)  # every refused item, whole, for inspection
    assert [(k["seq"], k["item"]["value"]) for k in kept] == [(2, "NaN"), (3, "1.125")]


def test_broken_envelope_with_a_range_is_acknowledged_without_one_is_not(engine: Engine) -> None:
    w = Writer(engine)
    topic = p.topic(GW, "readings")
    lying = b'{"v":1,"stream":"readings","first":1,"last":2,"items":[{}]}'  # 1 item for 2
    assert _upto(w.handle(topic, lying)) == 2
    assert w.handle(topic, b"garbage") == []
    assert w.handle("elsewhere/gw/readings", b"{}") == []
    w2 = Writer(engine, max_message_bytes=100)
    assert w2.handle(topic, _batch(3, 10)) == _ack_list(w2, 10)
    with engine.connect() as conn:
        reasons = conn.execute(select(t.dead_letters.c.reason).order_by(t.dead_letters.c.id)
                               ).scalars().all()
        payloads = conn.execute(select(t.dead_letters.c.payload)).scalars().all()
    assert "does not match 1 items" in reasons[0] and "acknowledged" in reasons[0]
    assert "not JSON" in reasons[1]
    assert "not under sitegate/v1/" in reasons[2]
    assert reasons[3].startswith("oversized")
    assert b"garbage" in payloads  # kept for inspection


def _ack_list(w: Writer, upto: int) -> list:
    return [w._ack(GW, "readings", upto, 3, 10)]


def test_sessions_and_events_keep_the_payload_and_fill_the_columns(engine: Engine) -> None:
    w = Writer(engine)
    record = p.SessionRecord(
        session_id="cp1-42", charge_point="cp1", connector=2, badge="04A1B2C3",
        start=datetime(2026, 3, 1, 8, 0, tzinfo=UTC), stop=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        meter_start_wh=Decimal("1000"), meter_stop_wh=Decimal("12500.5"),
        energy_wh=Decimal("11500.5"), status="completed",
    ).to_payload()
    w.handle(p.topic(GW, "sessions"), p.encode_batch("sessions", 1, [json.dumps(record)]))
    event = {"ts": "2026-03-01T08:00:00+00:00", "kind": "clock_unsynced", "severity": "warning",
             "message": "no NTP yet"}
    w.handle(p.topic(GW, "events"), p.encode_batch("events", 1, [json.dumps(event)]))
    with engine.connect() as conn:
        s = conn.execute(select(t.sessions)).mappings().one()
        e = conn.execute(select(t.events)).mappings().one()
    assert (s["session_id"], s["charge_point_id"], s["connector"], s["badge"], s["energy_wh"]) \
        == ("cp1-42", "cp1", 2, "04A1B2C3", "11500.5")
    assert s["stopped_at"].replace(tzinfo=UTC) == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert json.loads(s["payload"]) == record
    assert (e["kind"], e["severity"], json.loads(e["payload"])) == (
        "clock_unsynced", "warning", event)


def test_status_birth_and_will_drive_the_registry(engine: Engine) -> None:
    w = Writer(engine)
    topic = p.topic(GW, "status")
    w.handle(topic, p.dumps({"v": 1, "state": "online", "applied_config_version": 3}))
    w.handle(topic, p.dumps({"v": 1, "state": "offline"}))  # the will: no config version
    w.handle(topic, b"")  # a cleared retained status is ignored
    w.handle(topic, b'{"state": "sleeping"}')
    with engine.connect() as conn:
        g = conn.execute(select(t.gateways)).mappings().one()
        n_dead = len(conn.execute(select(t.dead_letters)).all())
    assert (g["gateway_id"], g["online"], g["applied_config_version"]) == (GW, False, 3)
    assert json.loads(g["status"])["state"] == "offline"
    assert n_dead == 1


# -- buffer epochs -----------------------------------------------------------------------------

EPOCH_A = "20260101000000-aaaaaaaaaaaa"
EPOCH_B = "20260301000000-bbbbbbbbbbbb"


def _epoch_batch(epoch: str, first: int, last: int) -> bytes:
    return p.encode_batch("readings", first,
                          [_reading(n + (1000 if epoch == EPOCH_B else 0))
                           for n in range(first, last + 1)], epoch)


def test_a_new_epoch_restarts_sequences_without_losing_rows(engine: Engine) -> None:
    """A recreated buffer sends seq 1.. again under a new epoch: both are stored, each
    epoch has its own mark and the ack says which epoch it is for."""
    w = Writer(engine)
    topic = p.topic(GW, "readings")
    assert _upto(w.handle(topic, _batch(1, 10))) == 10  # a gateway from before epochs
    a = p.decode_ack(w.handle(topic, _epoch_batch(EPOCH_A, 1, 10))[0].payload)
    assert (a.epoch, a.upto) == (EPOCH_A, 10)
    b = p.decode_ack(w.handle(topic, _epoch_batch(EPOCH_B, 1, 5))[0].payload)
    assert (b.epoch, b.upto) == (EPOCH_B, 5)
    assert _upto(w.handle(topic, _epoch_batch(EPOCH_A, 1, 10))) == 10  # resend: no change
    b2 = p.decode_ack(w.handle(topic, _epoch_batch(EPOCH_B, 8, 9))[0].payload)
    assert (b2.epoch, b2.upto) == (EPOCH_B, 5)  # gap 6..7 in B, A unaffected
    assert _upto(w.handle(topic, _epoch_batch(EPOCH_B, 6, 7))) == 9
    # An ack of the legacy epoch has no epoch field: a gateway from before epochs reads it
    # with its strict Ack model.
    legacy_ack = json.loads(w.handle(topic, _batch(11, 12))[0].payload)
    assert "epoch" not in legacy_ack and legacy_ack["upto"] == 12
    with engine.connect() as conn:
        got = conn.execute(select(t.readings.c.epoch, t.readings.c.seq, t.readings.c.value)
                           ).all()
        marks = conn.execute(select(t.acks.c.epoch, t.acks.c.upto)).all()
    by_epoch: dict[str, list[tuple[int, str]]] = {}
    for epoch, seq, value in got:
        by_epoch.setdefault(epoch, []).append((seq, value))
    assert sorted(by_epoch[p.LEGACY_EPOCH]) == [(n, f"{n}.125") for n in range(1, 13)]
    assert sorted(by_epoch[EPOCH_A]) == [(n, f"{n}.125") for n in range(1, 11)]
    assert sorted(by_epoch[EPOCH_B]) == [(n, f"{n + 1000}.125") for n in range(1, 10)]
    assert len(got) == 12 + 10 + 9
    assert sorted(marks) == sorted([(p.LEGACY_EPOCH, 12), (EPOCH_A, 10), (EPOCH_B, 9)])


def test_broken_batch_of_an_epoch_is_acknowledged_in_that_epoch(engine: Engine) -> None:
    w = Writer(engine)
    lying = (b'{"v":1,"stream":"readings","epoch":"' + EPOCH_B.encode()
             + b'","first":1,"last":2,"items":[{}]}')
    ack = p.decode_ack(w.handle(p.topic(GW, "readings"), lying)[0].payload)
    assert (ack.epoch, ack.upto) == (EPOCH_B, 2)
    bad_epoch = b'{"v":1,"stream":"readings","epoch":"a b","first":1,"last":1,"items":[{}]}'
    assert w.handle(p.topic(GW, "readings"), bad_epoch) == []  # no range to trust: no ack


# -- the current report per session ---------------------------------------------------------


def _report(n: int, status: str, stop_wh: str, stop: datetime | None = None) -> str:
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    rec = p.SessionRecord(session_id=f"cp1-{n}", charge_point="cp1", connector=1,
                          badge="04A1B2C3", start=start, stop=stop,
                          meter_start_wh=Decimal("1000"), meter_stop_wh=Decimal(stop_wh),
                          energy_wh=Decimal(stop_wh) - Decimal("1000"), status=status)
    return json.dumps(rec.to_payload())


def test_session_latest_holds_the_current_report(engine: Engine) -> None:
    w = Writer(engine)
    topic = p.topic(GW, "sessions")
    stop = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    def send(first: int, reports: list[str], epoch: str = p.LEGACY_EPOCH) -> None:
        w.handle(topic, p.encode_batch("sessions", first, reports, epoch))

    # Session 42: two running reports, then the completed one, all in one batch.
    send(1, [_report(42, "running", "1500"), _report(42, "running", "2500.5"),
             _report(42, "completed", "3000.25", stop)])
    # Session 43: running; its completed report travels in a batch that arrives BEFORE a
    # later-seq running report (out of order: seq 6 arrives before seq 5).
    send(4, [_report(43, "running", "1100")])
    send(6, [_report(43, "completed", "1800", stop)])
    send(5, [_report(43, "running", "1700")])
    # Session 44: running only; then a newer epoch (the buffer was replaced) reports it on.
    send(7, [_report(44, "running", "1200")])
    send(1, [_report(44, "running", "1400")], EPOCH_B)
    send(1, [_report(44, "running", "1400")], EPOCH_B)  # the same batch delivered twice
    with engine.connect() as conn:
        latest = {r["session_id"]: r for r in conn.execute(select(t.session_latest)).mappings()}
        n_reports = len(conn.execute(select(t.sessions)).all())
    assert n_reports == 8  # every report is kept in sessions
    assert set(latest) == {"cp1-42", "cp1-43", "cp1-44"}
    s42, s43, s44 = latest["cp1-42"], latest["cp1-43"], latest["cp1-44"]
    assert (s42["completed"], s42["seq"], s42["energy_wh"]) == (True, 3, "2000.25")
    assert s42["stopped_at"].replace(tzinfo=UTC) == stop
    assert json.loads(s42["payload"])["meter_stop_wh"] == "3000.25"
    # The completed report wins over the running one with the higher seq.
    assert (s43["completed"], s43["seq"], s43["energy_wh"]) == (True, 6, "800")
    assert (s44["completed"], s44["epoch"], s44["seq"], s44["energy_wh"]) == (
        False, EPOCH_B, 1, "400")


def test_migration_from_ingest_0001_keeps_rows_under_the_legacy_epoch(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    _migrate_with_data(str(tmp_path / "old.db"))


@pytest.mark.postgres
def test_migration_from_ingest_0001_on_postgresql(postgres_url: str) -> None:
    _migrate_with_data(postgres_url)


def _migrate_with_data(url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from sitegate.cloud.store.db import alembic_config

    command.upgrade(alembic_config(url), "ingest_0001")
    old = make_engine(url)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    running = json.loads(_report(7, "running", "1500"))
    done = json.loads(_report(7, "completed", "2000", datetime(2026, 3, 1, 9, tzinfo=UTC)))
    with old.begin() as conn:
        for seq in (1, 2):
            conn.execute(text(
                "INSERT INTO readings (gateway_id, seq, meter_id, ts, quantity, value, unit, "
                "quality, flags, received_at) VALUES (:g, :s, 'm1', :ts, '1-0:1.8.0', :v, "
                "'kWh', 'good', '[]', :now)"), {"g": GW, "s": seq, "ts": now, "v": f"{seq}.5",
                                                "now": now})
        for seq, rec in ((1, done), (2, running)):  # completed first, a late running after
            conn.execute(text(
                "INSERT INTO sessions (gateway_id, seq, payload, session_id, received_at) "
                "VALUES (:g, :s, :payload, :sid, :now)"),
                {"g": GW, "s": seq, "payload": json.dumps(rec), "sid": "cp1-7", "now": now})
        conn.execute(text("INSERT INTO acks (gateway_id, stream, upto, updated_at) "
                          "VALUES (:g, 'readings', 2, :now)"), {"g": GW, "now": now})
        conn.execute(text("INSERT INTO ack_ranges (gateway_id, stream, first, last) "
                          "VALUES (:g, 'sessions', 5, 6)"), {"g": GW})
    old.dispose()
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(t.readings.c.epoch, t.readings.c.seq)
                            .order_by(t.readings.c.seq)).all() == [("0", 1), ("0", 2)]
        assert conn.execute(select(t.acks.c.stream, t.acks.c.epoch, t.acks.c.upto)).all() == [
            ("readings", "0", 2)]
        assert conn.execute(select(t.ack_ranges.c.epoch, t.ack_ranges.c["first"])).all() == [
            ("0", 5)]
        latest = conn.execute(select(t.session_latest)).mappings().one()
    assert (latest["session_id"], latest["completed"], latest["seq"]) == ("cp1-7", True, 1)
    # The migrated database goes on: the legacy mark continues, a new epoch starts at 1.
    w = Writer(engine)
    topic = p.topic(GW, "readings")
    assert _upto(w.handle(topic, _batch(3, 4))) == 4
    assert p.decode_ack(w.handle(topic, _epoch_batch(EPOCH_A, 1, 2))[0].payload).upto == 2
    with engine.connect() as conn:
        assert len(conn.execute(select(t.readings)).all()) == 6
    engine.dispose()


# -- many messages, one transaction ----------------------------------------------------------


def test_a_resent_range_is_acknowledged_without_reading_its_items(engine: Engine) -> None:
    """The mark is looked at before the items: a batch at or below it costs an envelope
    decode. Proof: a resend of 1..10 whose items are garbage is acknowledged, and nothing
    is dead-lettered (the items were never checked)."""
    w = Writer(engine)
    topic = p.topic(GW, "readings")
    assert _upto(w.handle(topic, _batch(1, 10))) == 10
    garbage = p.encode_batch("readings", 1, ['{"nonsense": 1}'] * 10)
    ack = p.decode_ack(w.handle(topic, garbage)[0].payload)
    assert (ack.upto, ack.first, ack.last) == (10, 1, 10)
    # Overlapping the mark: only the items above it are checked and stored.
    overlap = p.encode_batch("readings", 6, ['{"nonsense": 1}'] * 5 + [_reading(11)])
    assert _upto(w.handle(topic, overlap)) == 11
    with engine.connect() as conn:
        assert conn.execute(select(t.dead_letters)).all() == []
        assert conn.execute(select(t.readings.c.seq)).scalars().all() == list(range(1, 12))


def test_many_messages_of_many_gateways_in_one_transaction(engine: Engine) -> None:
    """One call, one transaction: batches of three gateways in any order, a duplicate in
    the same group, a gap closed in the same group, a status; every ack carries the mark
    after the commit."""
    w = Writer(engine)
    msgs = []
    for gw in ("gw-a", "gw-b", "gw-c"):
        topic = p.topic(gw, "readings")
        msgs += [(topic, _batch(11, 20)), (topic, _batch(1, 10)), (topic, _batch(1, 10))]
    msgs.append((p.topic("gw-b", "status"), p.dumps({"v": 1, "state": "online"})))
    out = w.handle_many(msgs)
    acks = [(o.topic.split("/")[2], p.decode_ack(o.payload)) for o in out]
    assert len(acks) == 9  # one per batch, none for the status
    assert {(gw, a.first, a.upto) for gw, a in acks} == {
        (gw, first, 20) for gw in ("gw-a", "gw-b", "gw-c") for first in (1, 11)}
    with engine.connect() as conn:
        rows = conn.execute(select(t.readings.c.gateway_id, t.readings.c.seq)).all()
        marks = dict(conn.execute(select(t.acks.c.gateway_id, t.acks.c.upto)).all())
        gws = {g["gateway_id"]: g for g in conn.execute(select(t.gateways)).mappings()}
        parked = conn.execute(select(t.ack_ranges)).all()
    assert sorted(rows) == sorted((gw, n) for gw in ("gw-a", "gw-b", "gw-c")
                                  for n in range(1, 21))
    assert marks == {"gw-a": 20, "gw-b": 20, "gw-c": 20} and parked == []
    assert json.loads(gws["gw-b"]["status"])["state"] == "online"
    assert set(gws) == {"gw-a", "gw-b", "gw-c"}


def test_text_longer_than_its_column_is_a_refused_item(engine: Engine) -> None:
    """Checked before the database sees it (which would fail the whole transaction)."""
    w = Writer(engine)
    good = _batch(1, 5)
    # Valid for the protocol but not for the store: a meter id longer than its column.
    long_meter = json.dumps({**json.loads(_reading(1)), "meter_id": "m" * 200})
    bad = p.encode_batch("readings", 1, [long_meter, _reading(2)])
    out = w.handle_many([(p.topic("gw-ok", "readings"), good),
                         (p.topic("gw-bad", "readings"), bad)])
    acks = {o.topic.split("/")[2]: p.decode_ack(o.payload).upto for o in out}
    assert acks == {"gw-ok": 5, "gw-bad": 2}  # the long id is a refused item, range acked
    with engine.connect() as conn:
        rows = conn.execute(select(t.readings.c.gateway_id, t.readings.c.seq)).all()
        (reason,), = conn.execute(select(t.dead_letters.c.reason)).all()
    assert sorted(rows) == [("gw-bad", 2)] + [("gw-ok", n) for n in range(1, 6)]
    assert reason.startswith("seq 1: meter_id: longer than 128")


@pytest.mark.postgres
def test_a_message_the_store_refuses_does_not_hold_up_its_group(postgres_url: str) -> None:
    """A message PostgreSQL refuses (a NUL in a text) fails the shared transaction; each
    message is then written on its own: the others are stored and acknowledged, the bad
    one is a dead letter with its range acknowledged."""
    engine = _engine(postgres_url)
    w = Writer(engine)
    nul = json.dumps({**json.loads(_reading(1)), "meter_id": "m\u0000"})
    out = w.handle_many([(p.topic("gw-ok", "readings"), _batch(1, 5)),
                         (p.topic("gw-nul", "readings"), p.encode_batch("readings", 1, [nul])),
                         (p.topic("gw-ok2", "readings"), _batch(1, 3))])
    acks = {o.topic.split("/")[2]: p.decode_ack(o.payload).upto for o in out}
    assert acks == {"gw-ok": 5, "gw-ok2": 3, "gw-nul": 1}
    with engine.connect() as conn:
        rows = conn.execute(select(t.readings.c.gateway_id, t.readings.c.seq)).all()
        (reason,), = conn.execute(select(t.dead_letters.c.reason)).all()
    assert sorted(rows) == [("gw-ok", n) for n in range(1, 6)] + [("gw-ok2", n)
                                                                   for n in range(1, 4)]
    assert reason.startswith("not stored:") and "acknowledged" in reason
    engine.dispose()


def test_typed_and_general_paths_store_the_same(engine: Engine) -> None:
    """A batch in the usual form is decoded typed; its odd items still get the general
    checks. The same items in a batch the typed decode refuses (an item with an unknown
    key) go the general way whole: both store the same rows and refuse the same items."""
    now = datetime.now(UTC).replace(microsecond=0)
    items = [
        {"meter_id": "m1", "ts": now.isoformat(), "quantity": "q", "value": "12.50",
         "unit": "kWh"},
        {"meter_id": "m1", "ts": now.isoformat(), "quantity": "q2", "value": "4.5E+3",
         "unit": "Wh", "quality": "suspect"},
        {"meter_id": "m2", "ts": now.isoformat(), "quantity": "q", "value": "-0.0",
         "unit": "kWh", "flags": ["clock_unsynced"], "read_at": now.isoformat()},
        {"meter_id": "m3", "ts": now.isoformat(), "quantity": "q", "value": "abc",
         "unit": "kWh"},
        {"meter_id": "m4", "ts": "2999-01-01T00:00:00+00:00", "quantity": "q", "value": "1",
         "unit": "kWh"},
        {"meter_id": "m5", "ts": now.isoformat().replace("+00:00", "Z"), "quantity": "q",
         "value": "1e2", "unit": "m³"},
    ]
    w = Writer(engine)
    typed = p.encode_batch("readings", 1, [json.dumps(i) for i in items])
    general = p.encode_batch("readings", 1, [json.dumps(i) for i in items]
                             + [json.dumps({**items[0], "odd": 1})])
    assert _upto(w.handle(p.topic("gw-typed", "readings"), typed)) == 6
    assert _upto(w.handle(p.topic("gw-general", "readings"), general)) == 7
    r = t.readings.c
    with engine.connect() as conn:
        def rows(gw: str) -> list[tuple]:
            return [tuple(x) for x in conn.execute(
                select(r.seq, r.meter_id, r.value, r.unit, r.quality, r.flags)
                .where(r.gateway_id == gw).order_by(r.seq))]

        assert rows("gw-typed") == rows("gw-general") == [
            (1, "m1", "12.50", "kWh", "good", "[]"),
            (2, "m1", "4500", "Wh", "suspect", "[]"),
            (3, "m2", "0.0", "kWh", "good", '["clock_unsynced"]'),
            (6, "m5", "100", "m³", "good", "[]")]
        letters = [json.loads(x) for x in conn.execute(
            select(t.dead_letters.c.payload).order_by(t.dead_letters.c.id)).scalars()]
    assert [[(x["seq"], x["reason"]) for x in letter] for letter in letters][0] == \
        [(x["seq"], x["reason"]) for x in letters[1]][:2]
    assert [x["seq"] for x in letters[0]] == [4, 5] and [x["seq"] for x in letters[1]] == [4, 5, 7]
