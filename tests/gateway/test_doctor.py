"""``sitegate doctor`` as a technician runs it: a real process against real parts (missing
device node, a port nobody listens on, Mosquitto, a socat pty, the daemon itself)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.conftest import Mosquitto


def _clock_cmd(tmp: Path, answer: str) -> str:
    """A stand-in for ``timedatectl show -p NTPSynchronized``, chosen through the real
    $SITEGATE_CLOCK_CMD setting: this machine has no systemd to ask."""
    script = tmp / f"clock-{answer}"
    script.write_text(f"#!/bin/sh\necho NTPSynchronized={answer}\n")
    script.chmod(0o755)
    return str(script)


def _doctor(cfg: Path, clock: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SITEGATE_CLOCK_CMD": clock}
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "doctor", "-c",
                           str(cfg), *extra], capture_output=True, text=True, timeout=60,
                          env=env)


def _site(tmp: Path, port: str, broker: str, extra: str = "") -> Path:
    cfg = tmp / "site.toml"
    cfg.write_text(
        f'gateway_id = "gw-doc"\n[storage]\npath = "{tmp}/buffer.db"\n'
        f'[health]\nsocket = "{tmp}/sg.sock"\n[mqtt]\nbroker = "{broker}"\n'
        f'[[buses]]\nname = "rs485"\nserial = {{ port = "{port}" }}\n' + extra)
    return cfg


def _by_name(out: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads(out)["checks"]}


def _expired_cert(tmp: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-doc")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - timedelta(days=30)).not_valid_after(now - timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp / "identity").mkdir()
    (tmp / "identity" / "device.crt").write_bytes(cert.public_bytes(Encoding.PEM))


def test_doctor_names_missing_port_stopped_broker_and_unsynced_clock(
        tmp_path: Path, free_port: int) -> None:
    cfg = _site(tmp_path, "/dev/ttyUSB-missing", f"mqtt://127.0.0.1:{free_port}")
    _expired_cert(tmp_path)
    clock = _clock_cmd(tmp_path, "no")
    text = _doctor(cfg, clock)
    assert text.returncode == 1, text.stderr
    assert "Traceback" not in text.stdout + text.stderr
    lines = text.stdout.splitlines()

    def fix_after(needle: str) -> str:
        i = next(i for i, line in enumerate(lines) if needle in line)
        assert lines[i].startswith("[FAIL]"), lines[i]
        assert lines[i + 1].strip().startswith("fix:"), lines[i + 1]
        return lines[i + 1]

    assert "serial.port" in fix_after("/dev/ttyUSB-missing is not present")
    assert "broker runs" in fix_after(f"127.0.0.1:{free_port} not reachable")
    assert "NTP" in fix_after("clock: not synchronized")
    assert "claim-token" in fix_after("certificate: expired")
    assert "systemctl start sitegate" in fix_after("daemon is not running")

    checks = _by_name(_doctor(cfg, clock, "--json").stdout)
    assert checks["clock"]["level"] == checks["broker"]["level"] == "fail"
    assert checks["serial port of bus rs485"]["level"] == "fail"


def test_doctor_clock_without_systemd_falls_back_to_the_kernel(tmp_path: Path,
                                                             free_port: int) -> None:
    """A command that does not answer (no systemd here): the kernel's word, classified."""
    cfg = _site(tmp_path, "/dev/ttyUSB-missing", f"mqtt://127.0.0.1:{free_port}")
    res = _doctor(cfg, str(tmp_path / "no-such-command"), "--json")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    clock = _by_name(res.stdout)["clock"]
    assert "adjtimex" in clock["detail"] and clock["level"] in ("ok", "warn", "fail")


def test_doctor_unreadable_port_suggests_dialout(tmp_path: Path, free_port: int) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may open any file")
    port = tmp_path / "ttyLOCKED"
    port.write_text("")
    port.chmod(0o000)
    cfg = _site(tmp_path, str(port), f"mqtt://127.0.0.1:{free_port}")
    checks = _by_name(_doctor(cfg, _clock_cmd(tmp_path, "yes"), "--json").stdout)
    assert "dialout" in checks["serial port of bus rs485"]["fix"]


def _wait_socket(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the daemon did not open its control socket"
        time.sleep(0.1)


def test_doctor_healthy_gateway_passes(tmp_path: Path, mosquitto: Mosquitto,
                                       pty_pair: tuple[str, str]) -> None:
    cfg = _site(tmp_path, pty_pair[0], mosquitto.url)
    proc = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                             str(cfg)], stderr=subprocess.PIPE, text=True)
    try:
        _wait_socket(tmp_path / "sg.sock", proc)
        res = _doctor(cfg, _clock_cmd(tmp_path, "yes"), "--json")
        text = _doctor(cfg, _clock_cmd(tmp_path, "yes"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    checks = _by_name(res.stdout)
    for name in ("serial port of bus rs485", "clock", "broker", "daemon"):
        assert checks[name]["level"] == "ok", checks[name]
    assert res.returncode == 0, res.stdout
    assert "0 problem(s)" in text.stdout


def test_doctor_reports_bus_error_rate_and_backlog(tmp_path: Path, simulator: int) -> None:
    """The simulator leaves unit 10 silent: 1 meter in 10 never answers."""
    meters = "".join(f'[[meters]]\nid = "m{u}"\nbus = "conv"\nunit = {u}\n'
                     f'profile = "eastron_sdm630"\ninterval = 1\n' for u in (1, 10))
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f'gateway_id = "gw-doc"\n[storage]\npath = "{tmp_path}/buffer.db"\n'
        f'[health]\nsocket = "{tmp_path}/sg.sock"\n'
        f'[[buses]]\nname = "conv"\ntimeout = 0.3\nretries = 0\n'
        f'tcp = {{ host = "127.0.0.1", port = {simulator}, framing = "rtu-over-tcp" }}\n'
        + meters)
    proc = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                             str(cfg)], stderr=subprocess.PIPE, text=True)
    clock = _clock_cmd(tmp_path, "yes")
    try:
        _wait_socket(tmp_path / "sg.sock", proc)
        deadline = time.monotonic() + 30
        while True:  # until m10 has failed once and m1 has been read once
            checks = _by_name(_doctor(cfg, clock, "--json").stdout)
            bus = checks.get("bus conv", {})
            if "no_response" in bus.get("detail", "") and "unsent" in checks["backlog"][
                    "detail"] and not checks["backlog"]["detail"].startswith("0 "):
                break
            assert time.monotonic() < deadline, checks
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert bus["level"] in ("warn", "fail")  # 1 of 2 meters silent: about half the reads
    assert "addresses" in bus["fix"] and "wiring" in bus["fix"]
