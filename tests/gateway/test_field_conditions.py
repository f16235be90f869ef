"""Field conditions at the technician's tools: a closed port, a missing adapter, a unit id
out of range, a stopped daemon. One clear line saying what to check, exit 2, never a
traceback. Real sockets and a simulated meter (pymodbus server) in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SITEGATE = [sys.executable, "-m", "sitegate.gateway.cli"]
READ = ["--unit", "1", "--profile", "eastron_sdm630"]


def sitegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SITEGATE, *args], capture_output=True, text=True, timeout=60)


def assert_field(out: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2, one line on stderr with every word in it, no traceback."""
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_modbus_read_with_nothing_listening(free_port: int) -> None:
    out = sitegate("modbus", "read", "--host", "127.0.0.1", "--port", str(free_port), *READ)
    assert_field(out, f"127.0.0.1:{free_port}", "connection refused", "Check:")


def test_modbus_read_from_a_missing_serial_device(tmp_path: Path) -> None:
    dev = str(tmp_path / "ttyUSB9")
    out = sitegate("modbus", "read", "--serial", dev, *READ)
    assert_field(out, dev, "no such serial device", "plugged in")


@pytest.mark.parametrize("unit", ["0", "248", "x"])
def test_modbus_unit_ids_are_checked_by_the_parser(unit: str) -> None:
    out = sitegate("modbus", "read", "--host", "127.0.0.1", "--unit", unit,
                   "--profile", "eastron_sdm630")
    assert out.returncode == 2 and "argument --unit" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_modbus_scan_against_a_closed_port(free_port: int) -> None:
    out = sitegate("modbus", "scan", "--host", "127.0.0.1", "--port", str(free_port),
                   "--units", "1-3")
    assert_field(out, "connection refused")


def _site(tmp_path: Path, port: int) -> Path:
    site = tmp_path / "site.toml"
    site.write_text(f"""gateway_id = "gw-f"
[storage]
path = "{tmp_path}/buffer.db"
[health]
socket = "{tmp_path}/sitegate.sock"
[[buses]]
name = "conv"
tcp = {{ host = "127.0.0.1", port = {port}, framing = "rtu-over-tcp" }}
timeout = 0.3
[[meters]]
id = "apt-1"
bus = "conv"
unit = 1
profile = "eastron_sdm630"
""")
    return site


def test_read_with_the_daemon_stopped_and_the_bus_closed(tmp_path: Path, free_port: int) -> None:
    out = sitegate("read", "-c", str(_site(tmp_path, free_port)), "apt-1")
    assert_field(out, "daemon is not running", "apt-1", "connection refused")


def test_read_with_the_daemon_stopped_reads_directly_in_plain_decimals(
        tmp_path: Path, simulator: int) -> None:
    site = str(_site(tmp_path, simulator))
    out = sitegate("read", "-c", site, "apt-1")
    assert out.returncode == 0, out.stderr
    frequency = next(ln for ln in out.stdout.splitlines() if ln.startswith("1-0:14.7.0"))
    assert frequency.split()[1:3] == ["50", "Hz"], frequency  # was "5E+1 Hz"
    values = {r["quantity"]: r["value"]
              for r in json.loads(sitegate("read", "-c", site, "apt-1", "--json").stdout)
              ["readings"]}
    assert values["1-0:14.7.0"] == "50" and not any("E" in v for v in values.values())


def test_ocpp_list_takes_c_like_the_other_commands(tmp_path: Path, free_port: int) -> None:
    out = sitegate("ocpp", "list", "-c", str(_site(tmp_path, free_port)))
    assert_field(out, "daemon is not running", str(tmp_path / "sitegate.sock"))


def test_status_with_the_daemon_stopped(tmp_path: Path, free_port: int) -> None:
    out = sitegate("status", "-c", str(_site(tmp_path, free_port)))
    assert_field(out, "daemon is not running")


def test_schema_takes_json() -> None:
    out = sitegate("schema", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["title"] == "SiteConfig"


def test_modbus_scan_prints_each_device_as_found_and_progress_on_stderr(
        simulator: int) -> None:
    out = sitegate("modbus", "scan", "--host", "127.0.0.1", "--port", str(simulator),
                   "--framing", "rtu-over-tcp", "--units", "8-10")
    assert out.returncode == 0, out.stderr
    # units 8 and 9 answer, 10 is silent (tests/gateway/conftest.py)
    assert out.stdout.splitlines() == ["unit 8: answers", "unit 9: answers",
                                       "2 device(s) answered"]
    assert out.stderr.splitlines()[0].startswith("scanning: 0%")
    assert out.stderr.splitlines()[-1].startswith("scanning: 100%")
    js = sitegate("modbus", "scan", "--host", "127.0.0.1", "--port", str(simulator),
                  "--framing", "rtu-over-tcp", "--units", "8-10", "--json")
    assert [f["unit"] for f in json.loads(js.stdout)["found"]] == [8, 9]
    assert "unit 8: answers" in js.stderr  # found devices still show, JSON stays clean


def test_mbus_tools_use_the_same_vocabulary(tmp_path: Path, free_port: int) -> None:
    dev = str(tmp_path / "ttyUSB9")
    new = sitegate("mbus", "read", "--serial", dev, "--address", "1")
    assert_field(new, dev, "no such serial device")
    new = sitegate("mbus", "scan", "--host", "127.0.0.1", "--port", str(free_port))
    assert_field(new, f"127.0.0.1:{free_port}", "connection refused")
    # the earlier spellings still work, unlisted
    old = sitegate("mbus", "read", "--port", dev, "--address", "1")
    assert_field(old, dev, "no such serial device")
    old = sitegate("mbus", "scan", "--host", "127.0.0.1", "--tcp-port", str(free_port))
    assert_field(old, f"127.0.0.1:{free_port}", "connection refused")
    helptext = sitegate("mbus", "scan", "--help").stdout
    assert "--serial DEV" in helptext and "--tcp-port" not in helptext
    wrong = sitegate("mbus", "read", "--serial", dev, "--port", "10001", "--address", "1")
    assert wrong.returncode == 2 and "--port is the TCP port" in wrong.stderr


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_log() -> None:
    import io

    from sitegate.common.progress import Progress

    log = io.StringIO()
    p = Progress("scan", log, tty=False)
    for i in range(101):
        p.update(i, 100)
    p.say("found one")
    assert log.getvalue().splitlines()[:2] == ["scan: 0%", "scan: 10%"]
    assert len(log.getvalue().splitlines()) == 12  # every 10 % once, and the finding
    term = io.StringIO()
    p = Progress("scan", term, tty=True)
    p.update(1, 2, "unit 1")
    p.say("unit 1: answers", term)
    p.close()
    assert "\r" in term.getvalue() and "[###############...............]" in term.getvalue()
    assert "unit 1: answers\n" in term.getvalue()


def test_buffer_stats_shows_the_epoch_in_text_too(tmp_path: Path) -> None:
    from sitegate.gateway.buffer import Buffer

    db = tmp_path / "buffer.db"
    buf = Buffer(str(db))
    epoch = buf.epoch
    buf.close()
    out = sitegate("buffer", "stats", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert f"epoch {epoch}" in out.stdout.splitlines()[0]
