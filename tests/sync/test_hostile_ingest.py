"""A hostile message cannot stall the ingest: bounds checked while decoding, before anything
is built; absurd values and times never stored; every refused message is one dead letter."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from sitegate.cloud.ingest.writer import Plausibility, Writer
from sitegate.cloud.store import tables as t
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.sync import protocol as p

pytestmark = pytest.mark.timeout(120)

GW = "gw-hostile"
MAX_ITEMS = 10_000  # the most rows a gateway puts in one batch (its batch_rows limit)


def _bomb(items: int = 1_000_000) -> bytes:
    """~3 KB of zlib that inflates to a batch of ``items`` empty items."""
    head = f'{{"v":1,"stream":"readings","first":1,"last":{items},"items":['.encode()
    return zlib.compress(head + b",".join([b"{}"] * items) + b"]}", 9)


def _reading(ts: datetime, value: str = "1.5") -> dict:
    return {"meter_id": "m1", "ts": ts.isoformat(), "quantity": "1-0:1.8.0", "value": value,
            "unit": "kWh", "quality": "good"}


def _encode(items: list[dict], first: int = 1, stream: str = "readings") -> bytes:
    return p.encode_batch(stream, first, [json.dumps(i) for i in items])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    url = str(tmp_path / "cloud.db") if request.param == "sqlite" \
        else request.getfixturevalue("postgres_url")
    upgrade(url)
    return make_engine(url)


def _letters(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t.dead_letters.c.topic,
                                                      t.dead_letters.c.reason)
                                               .order_by(t.dead_letters.c.id))]


def _stored(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t.readings.c.seq, t.readings.c.value)
                                               .order_by(t.readings.c.seq))]


_DEEP = b"[" * 100_000 + b"]" * 100_000
_NOW = datetime.now(UTC)
HOSTILE = {
    "3 KB zlib to 1,000,000 items": ("readings", _bomb(), "JSON tokens"),
    "100,000-deep items": ("readings", b'{"v":1,"stream":"readings","first":1,"last":1,'
                           b'"items":[' + _DEEP + b"]}", "nested deeper than 16"),
    "seq 2**63": ("readings", _encode([_reading(_NOW)], first=2**63),
                  "less than or equal to 9223372036854775807"),
    "more items than a gateway sends": ("readings", _encode([_reading(_NOW)] * (MAX_ITEMS + 1)),
                                        f"more than {MAX_ITEMS} items"),
    "100,000-deep status": ("status", b'{"state":"online","x":' + _DEEP + b"}",
                            "nested deeper than 16"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_message_is_refused_whole_as_one_dead_letter(engine: Engine, name: str) -> None:
    leaf, payload, why = HOSTILE[name]
    w = Writer(engine)
    assert w.handle(p.topic(GW, leaf), payload) == []  # no range acknowledged
    (topic, reason), = _letters(engine)  # one, not one per item
    assert topic == p.topic(GW, leaf) and why in reason
    assert _stored(engine) == []


def test_the_largest_batch_a_gateway_sends_still_goes_through(engine: Engine) -> None:
    assert len(_bomb()) < 4000
    items = [_reading(_NOW - timedelta(seconds=i)) for i in range(MAX_ITEMS)]
    out = Writer(engine).handle(p.topic(GW, "readings"), _encode(items))
    assert p.decode_ack(out[0].payload).upto == MAX_ITEMS
    assert len(_stored(engine)) == MAX_ITEMS


def test_absurd_values_and_times_are_dead_lettered_never_stored(engine: Engine) -> None:
    w = Writer(engine, plausible=Plausibility(future=timedelta(hours=1),
                                              backfill=timedelta(days=30)))
    now = datetime.now(UTC).replace(microsecond=0)
    good = _reading(now - timedelta(days=1))
    items = [
        good,                                                   # 1 stored
        {**good, "value": "1e999999"},                          # 2 beyond Decimal's reach
        {**good, "value": "NaN"},                               # 3
        {**good, "value": "-Infinity"},                         # 4
        {**good, "value": "0.0000000000001"},                   # 5 finer than billing holds
        _reading(datetime(9999, 12, 31, tzinfo=UTC)),           # 6 year 9999
        _reading(now + timedelta(hours=2)),                     # 7 beyond the 1 h margin
        _reading(now - timedelta(days=31)),                     # 8 before the gateway existed
        {**good, "value": "999999999999.5"},                    # 9 stored: < 1e12
        _reading(now + timedelta(minutes=30)),                  # 10 stored: within margin
    ]
    out = w.handle(p.topic(GW, "readings"), _encode(items))
    assert p.decode_ack(out[0].payload).upto == 10  # all handled: nothing resent forever
    assert _stored(engine) == [(1, "1.5"), (9, "999999999999.5"), (10, "1.5")]
    (topic, reason), = _letters(engine)
    assert "7 of 10 items refused" in reason
    assert reason.startswith("seq 2:") and "out of range" in reason
    with engine.connect() as conn:
        kept = json.loads(conn.execute(select(t.dead_letters.c.payload)).scalar_one())
    assert [k["seq"] for k in kept] == [2, 3, 4, 5, 6, 7, 8]
    assert "in the future" in kept[4]["reason"] and "in the future" in kept[5]["reason"]
    assert "before the gateway existed" in kept[6]["reason"]
    # A session whose energy no Decimal context can bill is refused the same way.
    record = {"session_id": "cp1-1", "charge_point": "cp1", "connector": 1,
              "start": (now - timedelta(hours=2)).isoformat(),
              "stop": (now - timedelta(hours=1)).isoformat(), "meter_start_wh": "0",
              "energy_wh": "1e999999", "status": "completed"}
    w.handle(p.topic(GW, "sessions"), _encode([record], stream="sessions"))
    with engine.connect() as conn:
        assert conn.execute(select(t.sessions)).all() == []
    assert "energy_wh" in _letters(engine)[-1][1]


def _peak_rss_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_3kb_bomb_leaves_the_ingest_small_and_other_gateways_flowing(
        sqlite_site, mqtt_client, wait) -> None:
    """Today's code inflated this to a million items (1.84 GB, minutes of one writer, a
    million dead letters). Now: one dead letter, a bounded process, the real gateway's
    readings keep arriving. The RSS bound is generous (a memory bound, not a timing)."""
    site = sqlite_site
    cloud = site.cloud()
    rows = 1500
    site.gateway(rows, 500)
    wait(lambda: site.cloud_count() >= 100, "first readings in the cloud")
    bomber = p.topic("gw-bomber", "readings")
    mqtt_client.publish(bomber, _bomb())
    site.wait_all_acked(rows)
    site.assert_exactly_once(rows)
    letters = wait(lambda: site.sql("SELECT topic, reason FROM dead_letters"), "dead letter")
    assert [topic for topic, _ in letters] == [bomber]
    assert cloud.popen.poll() is None
    peak = _peak_rss_kib(cloud.popen.pid)
    assert peak < 300 * 1024, f"ingest peak RSS {peak} KiB"


@pytest.mark.postgres
def test_a_64_bit_seq_is_stored(postgres_url: str) -> None:
    """PostgreSQL kept seq in a 32-bit column: a valid 64-bit seq failed the insert (a dead
    letter, never stored). Since ingest_0004 sequences and marks are BIGINT."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    topic = p.topic(GW, "readings")
    out = Writer(engine).handle(topic, _encode([_reading(_NOW)], first=2**40))
    assert p.decode_ack(out[0].payload).last == 2**40
    assert _letters(engine) == []
    assert _stored(engine) == [(2**40, "1.5")]
    engine.dispose()


def test_the_inbox_is_bounded_in_bytes_and_a_large_message_still_passes() -> None:
    import threading

    from sitegate.cloud.ingest.inbox import Inbox

    inbox = Inbox(max_items=10, max_bytes=100)
    inbox.put(("a", b"x" * 60))
    second = threading.Thread(target=inbox.put, args=(("b", b"y" * 60),))
    second.start()
    second.join(0.5)
    assert second.is_alive() and inbox.held() == (1, 60)  # waits: 120 bytes > 100
    assert inbox.get() == ("a", b"x" * 60)
    second.join(10)
    assert inbox.held() == (1, 60)
    inbox.get()
    inbox.put(("big", b"z" * 500))  # larger than the bound: goes in alone, never stuck
    assert inbox.get()[0] == "big"
