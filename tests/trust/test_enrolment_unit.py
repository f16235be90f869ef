"""The enrolment broker's systemd unit (systemd/cloud/): a valid unit that starts exactly the
configuration ``broker-config`` writes, so the operator's second Mosquitto survives a reboot."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_port
from tests.trust.conftest import make_broker

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "cloud" / "sitegate-enrolment-broker.service"
CONF_DIR = "/etc/mosquitto/sitegate"  # the README's broker-config --out


def _service() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    return unit


def test_the_unit_is_valid() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the unit was not verified")
    res = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == ""


def test_the_unit_starts_what_broker_config_wrote(tmp_path: Path) -> None:
    unit = _service()
    assert unit["Unit"]["ConditionPathExists"] == f"{CONF_DIR}/enrolment.conf"
    broker = make_broker(tmp_path)
    argv = [a.replace(CONF_DIR, str(broker.dir)) for a in
            shlex.split(unit["Service"]["ExecStart"])]
    assert Path(argv[argv.index("-c") + 1]).is_file()
    argv[0] = shutil.which("mosquitto") or argv[0]
    log = (tmp_path / "enrolment.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", broker.provision_port)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)
        log.close()
