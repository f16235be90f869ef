"""Ingest's lower time bound is the gateway's enrolment when it has an identity: a gateway
id first seen long ago (an earlier box under the same id, or forged traffic before mTLS)
does not widen what a newly enrolled gateway may backfill."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from sitegate.cloud.ingest.writer import Plausibility, Writer
from sitegate.cloud.store import tables as t
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.sync import protocol as p

GW = "gw-bound"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    url = str(tmp_path / "cloud.db") if request.param == "sqlite" \
        else request.getfixturevalue("postgres_url")
    upgrade(url)
    return make_engine(url)


def _batch(*times: datetime) -> bytes:
    return p.encode_batch("readings", 1, [json.dumps(
        {"meter_id": "m1", "ts": ts.isoformat(), "quantity": "1-0:1.8.0", "value": "1.5",
         "unit": "kWh", "quality": "good"}) for ts in times])


def test_readings_from_before_the_enrolment_margin_are_dead_lettered(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    enrolled = now - timedelta(days=2)
    with engine.begin() as conn:
        # First seen 60 days ago (a previous box under this id), enrolled 2 days ago.
        conn.execute(t.gateways.insert().values(gateway_id=GW, first_seen=now - timedelta(
            days=60), last_seen=now - timedelta(days=60), online=False))
        conn.execute(t.gateway_identities.insert().values(gateway_id=GW, site_id="s1",
                                                          enrolled_at=enrolled))
    w = Writer(engine, plausible=Plausibility(backfill=timedelta(days=7)))
    # enrolled - 7 days = 9 days ago is the earliest: 8 days ago is kept, 20 days ago is not
    # (with "first seen" it would be 60 + 7 = 67 days ago, and both stored).
    out = w.handle(p.topic(GW, "readings"), _batch(now - timedelta(days=8),
                                                   now - timedelta(days=20)))
    assert p.decode_ack(out[0].payload).upto == 2
    with engine.connect() as conn:
        stored = conn.execute(select(t.readings.c.seq)).scalars().all()
        (reason,) = conn.execute(select(t.dead_letters.c.reason)).scalars().all()
        kept = json.loads(conn.execute(select(t.dead_letters.c.payload)).scalar_one())
    assert stored == [1]
    assert "1 of 2 items refused" in reason
    assert [k["seq"] for k in kept] == [2] and "before the gateway existed" in kept[0]["reason"]


def test_without_an_identity_first_seen_still_bounds(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:
        conn.execute(t.gateways.insert().values(gateway_id=GW, first_seen=now - timedelta(
            days=60), last_seen=now, online=True))
    w = Writer(engine, plausible=Plausibility(backfill=timedelta(days=7)))
    w.handle(p.topic(GW, "readings"), _batch(now - timedelta(days=66),
                                             now - timedelta(days=68)))
    with engine.connect() as conn:
        assert conn.execute(select(t.readings.c.seq)).scalars().all() == [1]
