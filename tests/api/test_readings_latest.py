"""``sitegate-cloud readings`` and ``GET /readings`` show the latest rows, not the oldest
(issue 17), in time order; ``order=oldest`` pages forward from ``since``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.cli import main
from sitegate.cloud.store import tables as t

from .conftest import Api

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _store(api: Api, n: int) -> None:
    with api.engine.begin() as conn:
        conn.execute(insert(t.readings), [
            {"gateway_id": "gw-1", "seq": i, "meter_id": "apt-1",
             "ts": T0 + timedelta(minutes=15 * i), "quantity": "1-0:1.8.0", "value": str(i),
             "unit": "kWh", "quality": "good", "flags": "[]", "received_at": T0}
            for i in range(1, n + 1)])


def test_cli_shows_the_latest_rows(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _store(api, 150)
    assert main(["readings", "--db", api.db, "--json"]) == 0  # default --limit 100
    rows = json.loads(capsys.readouterr().out)
    assert [r["seq"] for r in rows] == list(range(51, 151))  # the newest 100, oldest first


def test_api_latest_and_oldest(api: Api, tmp_path: Path) -> None:
    _store(api, 10)
    token = api.token(Scope.READ)
    code, rows, _ = api.call("GET", "/readings?limit=3", token=token)
    assert code == 200 and [r["seq"] for r in rows] == [8, 9, 10]
    since = (T0 + timedelta(minutes=15 * 4)).isoformat().replace("+00:00", "Z")
    code, rows, _ = api.call("GET", f"/readings?limit=3&order=oldest&since={since}",
                             token=token)
    assert code == 200 and [r["seq"] for r in rows] == [4, 5, 6]
    for bad in ("limit=0", "limit=-1", "order=newest"):
        assert api.call("GET", f"/readings?{bad}", token=token)[0] == 422, bad
