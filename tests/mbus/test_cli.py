"""``sitegate mbus ...`` end to end: the CLI process against an emulator process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)  # bounds a hang: up to 40 s measured at load 10
DATA = Path(__file__).parent.parent / "data" / "libmbus"


def sitegate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "mbus", *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def _wait_port(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, "emulator exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("emulator did not start")


@pytest.fixture
def emulator_tcp(free_port: int) -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-m", "sitegate.drivers.mbus.emulator", "--tcp",
                             str(free_port), "--demo"], stdout=subprocess.PIPE, text=True)
    try:
        _wait_port(free_port, proc)
        yield free_port
    finally:
        proc.terminate()
        proc.wait(10)


def test_decode_text_json_and_stdin() -> None:
    hexframe = (DATA / "test-frames" / "kamstrup_multical_601.hex").read_text()
    out = sitegate("decode", hexframe)
    assert out.returncode == 0 and "KAM" in out.stdout and "37351000" in out.stdout
    out = sitegate("decode", "-", "--json", stdin=hexframe)
    data = json.loads(out.stdout)
    assert data["identity"]["id"] == "06855817"
    energy = data["records"][1]
    assert (energy["quantity"], energy["value"], energy["unit"]) == ("Energy", "37351000", "Wh")


def test_decode_bad_input_is_a_clear_error() -> None:
    out = sitegate("decode", "68 04 04 68 08 01 70 08 81 16")  # application busy
    assert out.returncode == 2 and "application busy" in out.stderr
    out = sitegate("decode", "not hex")
    assert out.returncode == 2 and "not hexadecimal" in out.stderr
    assert "Traceback" not in out.stderr


def test_read_scan_over_tcp(emulator_tcp: int) -> None:
    link = ["--host", "127.0.0.1", "--port", str(emulator_tcp), "--timeout", "0.5"]
    out = sitegate("read", *link, "--address", "1", "--profile", "kamstrup_multical_601",
                   "--json")
    assert out.returncode == 0, out.stderr
    readings = {r["quantity"]: r for r in json.loads(out.stdout)["readings"]}
    assert readings["heat_energy"]["value"] == "37351"
    out = sitegate("scan", *link, "--addresses", "0-6", "--json")
    found = json.loads(out.stdout)
    assert [f["primary"] for f in found] == [1, 2, 3, 4, 5]
    # each meter as it is found, progress on stderr (plain lines: not a terminal)
    out = sitegate("scan", *link, "--addresses", "0-6")
    lines = out.stdout.splitlines()
    assert [ln.split()[1] for ln in lines[:-1]] == ["1", "2", "3", "4", "5"]
    assert lines[-1] == "5 meter(s) found"
    assert out.stderr.splitlines()[-1].startswith("primary scan: 100%"), out.stderr
    out = sitegate("read", *link, "--address", "9")
    assert out.returncode == 2 and "no acknowledgement" in out.stderr
    assert "Check: the wiring" in out.stderr and "Traceback" not in out.stderr


def test_secondary_scan_and_set_address_over_serial(pty_pair: tuple[str, str]) -> None:
    # Linux ptys keep part of the settings pyserial makes (not PARENB), and refuse pyserial's
    # second attempt from that state: give each CLI process the pristine line settings.
    fd = os.open(pty_pair[0], os.O_RDWR | os.O_NOCTTY)
    pristine = termios.tcgetattr(fd)

    def fresh_line() -> None:
        termios.tcsetattr(fd, termios.TCSANOW, pristine)

    # The emulator unpaced (each reply in one write, the line at 2400 baud): paced, its
    # replies follow the wire's schedule, and under load a late stray byte of a collision
    # (EN 13757-2's 33 bit times: 14 ms here) made it read as one meter.
    # tests/mbus/test_link.py reads paced replies.
    proc = subprocess.Popen([sys.executable, "-m", "sitegate.drivers.mbus.emulator", "--pty",
                             pty_pair[1], "--demo"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "emulator on" in proc.stdout.readline()
        link = ["--serial", pty_pair[0], "--baud", "2400", "--timeout", "0.4"]
        fresh_line()
        out = sitegate("scan", *link, "--secondary", "--json")
        assert out.returncode == 0, out.stderr
        ids = sorted(f["secondary"][:8] for f in json.loads(out.stdout))
        assert ids == sorted(["06855817", "66660205", "12000071", "08021382", "01006089"])
        fresh_line()
        out = sitegate("set-address", *link, "--secondary", "12000071", "--new", "77")
        assert out.returncode == 0, out.stderr
        fresh_line()
        out = sitegate("read", *link, "--address", "77", "--json")
        readings = {r["quantity"]: r["value"] for r in json.loads(out.stdout)["readings"]}
        assert readings["volume"] == "123.49"
    finally:
        os.close(fd)
        proc.terminate()
        proc.wait(10)
