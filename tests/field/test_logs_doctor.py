"""``sitegate logs`` from the journal (a stand-in journalctl: this machine has no systemd,
chosen through the real $SITEGATE_JOURNALCTL setting) or the daemon's own file; doctor's
watchdog and charger checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sitegate.common.sitefile import parse_config
from sitegate.firmware_tools.doctor import check_chargers, check_watchdog
from tests.field.conftest import cli

SITE = 'gateway_id = "gw-logs"\n[storage]\npath = "{tmp}/buffer.db"\n'


def _journal(tmp: Path, lines: list[dict]) -> str:
    """A journalctl stand-in printing records as `journalctl -o json` does (our JSON line in
    MESSAGE, the journal's own time in microseconds)."""
    now = datetime.now(UTC)
    records = []
    for i, line in enumerate(lines):
        t = now - timedelta(minutes=len(lines) - i)
        records.append(json.dumps({"MESSAGE": json.dumps(line), "_SYSTEMD_UNIT":
                                   "sitegate.service", "__REALTIME_TIMESTAMP":
                                   str(int(t.timestamp() * 1e6))}))
    data = tmp / "journal.jsonl"
    data.write_text("\n".join(records) + "\n")
    script = tmp / "journalctl"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {tmp}/journal-args\ncat {data}\n")
    script.chmod(0o755)
    return str(script)


def test_logs_from_the_journal_filtered_by_meter_bus_and_charger(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(tmp=tmp_path))
    env = {"SITEGATE_JOURNALCTL": _journal(tmp_path, [
        {"event": "bus.read_failed", "level": "warning", "bus": "rs485", "meter": "apt-1",
         "error": "no response"},
        {"event": "bus.read_failed", "level": "warning", "bus": "rs485", "meter": "apt-2"},
        {"event": "ocpp.connected", "level": "info", "charge_point": "garage-1"},
        "not JSON from a library",
    ])}
    res = cli("logs", "-c", str(site), "--journal", "--meter", "apt-1", "--json", env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [e["meter"] for e in out["entries"]] == ["apt-1"] and out["matched"] == 1
    assert out["entries"][0]["timestamp"]  # from the journal's own time
    args = (tmp_path / "journal-args").read_text()
    assert "-u sitegate -o json" in args and "--since" in args
    res = cli("logs", "-c", str(site), "--journal", "--bus", "rs485", env=env)
    assert res.stdout.count("bus.read_failed") == 2 and "(2 of 2 matching" in res.stdout
    res = cli("logs", "-c", str(site), "--journal", "--charger", "garage-1", "--json", env=env)
    assert [e["event"] for e in json.loads(res.stdout)["entries"]] == ["ocpp.connected"]


def test_logs_without_a_log_file_or_with_a_bad_since_is_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(tmp=tmp_path))
    res = cli("logs", "-c", str(site), "--file")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "no log file at" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "sitegate.log").write_text(
        json.dumps({"event": "daemon.ready", "level": "info", "timestamp":
                    datetime.now(UTC).isoformat()}) + "\n{broken\n")
    res = cli("logs", "-c", str(site), "--file", "--json")
    assert [e["event"] for e in json.loads(res.stdout)["entries"]] == ["daemon.ready"]
    res = cli("logs", "-c", str(site), "--file", "--since", "yesterday")
    assert res.returncode == 2 and "like 90s, 30m, 1h" in res.stderr


def test_doctor_watchdog_and_chargers() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    ok = check_watchdog({"watchdog": {"interval": 10.0, "last_ping": (
        now - timedelta(seconds=5)).isoformat()}}, now)
    assert ok[0].level == "ok"
    stuck = check_watchdog({"watchdog": {"interval": 10.0, "last_ping": (
        now - timedelta(seconds=60)).isoformat()}}, now)
    assert stuck[0].level == "fail" and "stuck" in stuck[0].fix
    assert check_watchdog({"watchdog": {"interval": None}}, now)[0].level == "warn"
    cfg = parse_config('gateway_id = "g"\n[ocpp]\n[[ocpp.charge_points]]\nid = "cp-1"\n'
                       '[[ocpp.charge_points]]\nid = "cp-2"\n')
    one = check_chargers(cfg, {"services": {"CentralSystem": {"connected": 1}}})
    assert one[0].level == "warn" and "1 of 2" in one[0].detail
    assert check_chargers(cfg, {"services": {"CentralSystem": {"connected": 0}}})[0].level \
        == "fail"
