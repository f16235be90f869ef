"""``sitegate check-config`` says what ``run`` would refuse on this box: a secret the site
file names that the box's secrets file does not hold, with its key and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SITE = '''gateway_id = "gw-1"
[storage]
path = "/tmp/never-used.db"
[mqtt]
broker = "mqtt://127.0.0.1:1883"
username = "gw-1"
password_secret = "mqtt"
[ocpp]
port = 0
[ocpp.security]
profile = 1
[[ocpp.charge_points]]
id = "garage-1"
password_secret = "garage-1"
'''


def _check(site: Path, secrets: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "check-config",
                           str(site), "--json"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SITEGATE_SECRETS": str(secrets)})


def test_a_named_secret_the_box_lacks_is_a_problem_with_key_and_line(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('mqtt = "broker-pw"\n')
    secrets.chmod(0o600)
    res = _check(site, secrets)
    assert res.returncode == 2, res.stdout + res.stderr
    line = SITE.splitlines().index('password_secret = "garage-1"') + 1  # 14
    assert json.loads(res.stdout)["problems"] == [
        {"path": "ocpp.charge_points[0].password_secret", "line": line,
         "message": f"no secret 'garage-1' in {secrets}"}]
    # held by the box: OK
    secrets.write_text('mqtt = "broker-pw"\ngarage-1 = "cp-pw"\n')
    assert _check(site, secrets).returncode == 0
    # a secrets file others can read is refused by run, so here too
    secrets.chmod(0o644)
    res = _check(site, secrets)
    assert res.returncode == 2 and "chmod 600" in res.stdout


def test_away_from_its_box_the_check_says_secrets_were_not_checked(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    res = _check(site, tmp_path / "none.toml")
    assert res.returncode == 0, res.stdout
    (warning,) = [w["message"] for w in json.loads(res.stdout)["warnings"]
                  if "secrets" in w["message"]]
    assert warning.startswith("named secrets not checked: no secrets file")
