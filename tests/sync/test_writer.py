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


def test_bad_item_is_dead_lettered_and_its_range_acknowledged(engine: Engine) -> None:
    w = Writer(engine)
    good = json.loads(_reading(1))
    items = [json.dumps(good), json.dumps({**good, "value": "NaN"}),
             json.dumps({**good, "ts": "2026-01-01T00:00:00"}), json.dumps(good)]
    out = w.handle(p.topic(GW, "readings"), p.encode_batch("readings", 1, items))
    assert _upto(out) == 4
    with engine.connect() as conn:
        assert conn.execute(select(t.readings.c.seq)).scalars().all() == [1, 4]
        reasons = sorted(conn.execute(select(t.dead_letters.c.reason)).scalars().all())
    assert reasons[0].startswith("seq 2:") and "finite" in reasons[0]
    assert reasons[1].startswith("seq 3:") and "timezone" in reasons[1]


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
