"""What a newcomer met at the sitegate-cloud command line: help that names a command that
does not exist, `readings` showing the oldest rows, `serve` silent while it cannot reach
the broker."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

CLOUD = [sys.executable, "-m", "sitegate.cloud.cli"]


def cloud(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLOUD, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_only_commands_that_exist() -> None:
    top = cloud("--help").stdout
    site_line = next(ln for ln in top.splitlines() if ln.strip().startswith("site "))
    assert "list" not in site_line, site_line
    assert cloud("site", "list", "--db", "x.db").returncode == 2  # argparse: no such command
    for verb in ("import", "show"):
        assert verb in site_line and cloud("site", verb, "--help").returncode == 0


def test_readings_shows_the_latest_rows_newest_last(tmp_path: Path) -> None:
    from sqlalchemy import insert

    from sitegate.cloud.store import tables as t
    from sitegate.cloud.store.db import make_engine, upgrade

    db = str(tmp_path / "c.db")
    upgrade(db)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [{"gateway_id": "gw-1", "epoch": "e1", "seq": n, "meter_id": "apt-1",
             "ts": start + timedelta(minutes=15 * n), "quantity": "1-0:1.8.0",
             "value": str(n), "unit": "kWh", "quality": "good", "flags": "[]",
             "received_at": start} for n in range(1, 151)]
    engine = make_engine(db)
    with engine.begin() as conn:
        conn.execute(insert(t.readings), rows)
    engine.dispose()
    out = cloud("readings", "--db", db, "--limit", "100", "--json")
    assert out.returncode == 0, out.stderr
    got = [r["seq"] for r in json.loads(out.stdout)]
    assert got == list(range(51, 151))  # the newest 100, in time order (as `tail` shows)
    text = cloud("readings", "--db", db, "--limit", "3").stdout.splitlines()
    assert [ln.split()[1] for ln in text[2:]] == ["148", "149", "150"]


def test_serve_says_it_is_connecting_and_why_each_attempt_failed(
        tmp_path: Path, free_port: int) -> None:
    proc = subprocess.Popen([*CLOUD, "serve", "--db", str(tmp_path / "c.db"), "--broker",
                             f"mqtt://127.0.0.1:{free_port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "ingest.connecting" in lines[0] and f"127.0.0.1:{free_port}" in lines[0], lines
    for line, retry in zip(lines[1:], ("1 s", "2 s"), strict=True):
        assert "ingest.connect_failed" in line and "Connection refused" in line, lines
        assert f"retry_in='{retry}'" in line, lines


def test_push_commands_name_a_missing_or_broken_file(tmp_path: Path) -> None:
    """A file that is not there or not JSON is one line and exit 2, before any broker."""
    broken = tmp_path / "badges.json"
    broken.write_text('{"badges": [', encoding="utf-8")
    cases = [("push-config", str(tmp_path / "site.toml"), "cannot read"),
             ("push-config", str(tmp_path / "site.json"), "cannot read"),
             ("push-badges", str(broken), "not JSON")]
    for command, path, said in cases:
        extra = ["--version", "2"] if command == "push-config" else []
        res = cloud(command, "--broker", "mqtt://127.0.0.1:9", "--gateway", "gw-1", *extra,
                    path)
        assert res.returncode == 2, (command, res.stderr)
        assert said in res.stderr and path in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
