"""Credentials are named in the site file and kept in the box's secrets file (0600); the
cloud's desired config may not carry one (issue 12: "it names them, the box keeps them")."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitegate.common.sitecheck import ConfigError
from sitegate.common.sitefile import parse_config
from sitegate.gateway import remote_config, secrets

SITE = '''gateway_id = "gw-1"
[storage]
path = "/tmp/never-used.db"
[mqtt]
broker = "mqtt://127.0.0.1:1883"
username = "gw-1"
{mqtt_password}
[ocpp]
port = 0
[ocpp.security]
profile = 1
[[ocpp.charge_points]]
id = "garage-1"
{cp_password}
'''


def _site(mqtt: str = 'password_secret = "mqtt"',
          cp: str = 'password_secret = "garage-1"') -> str:
    return SITE.format(mqtt_password=mqtt, cp_password=cp)


def _secrets(tmp: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp / "secrets.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_named_secrets_are_filled_from_the_secrets_file(tmp_path: Path) -> None:
    path = _secrets(tmp_path, 'mqtt = "broker-pw"\ngarage-1 = "cp-pw"\n')
    cfg = secrets.resolve(parse_config(_site()), "site.toml", path)
    assert cfg.mqtt is not None and cfg.mqtt.password == "broker-pw"
    assert cfg.ocpp is not None and cfg.ocpp.charge_points[0].password == "cp-pw"
    # The same box with the passwords written in its site file runs the same config.
    literal = parse_config(_site('password = "broker-pw"', 'password = "cp-pw"'))
    assert cfg == literal


def test_a_missing_secret_or_an_open_file_is_a_clear_config_error(tmp_path: Path) -> None:
    path = _secrets(tmp_path, 'mqtt = "broker-pw"\n')
    with pytest.raises(ConfigError) as exc:
        secrets.resolve(parse_config(_site()), "site.toml", path)
    assert [str(p) for p in exc.value.problems] == [
        f"ocpp.charge_points[0].password_secret: no secret 'garage-1' in {path}"]
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        secrets.resolve(parse_config(_site()), "site.toml", path)
    with pytest.raises(ConfigError, match="No such file"):
        secrets.resolve(parse_config(_site()), "site.toml", tmp_path / "none.toml")


def test_desired_config_with_a_credential_is_refused_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as exc:
        remote_config.parse_desired(_site(cp='password = "cp-pw"'), "config v3")
    assert [p.path for p in exc.value.problems] == ["ocpp.charge_points[0].password"]
    assert "cp-pw" not in str(exc.value)
    # Named, it is resolved from this box's secrets file.
    monkeypatch.setenv(secrets.ENV, str(_secrets(tmp_path, 'mqtt = "a"\ngarage-1 = "b"\n')))
    cfg = remote_config.parse_desired(_site(), "config v3")
    assert cfg.ocpp is not None and cfg.ocpp.charge_points[0].password == "b"


def test_a_shelly_password_is_named_too(tmp_path: Path) -> None:
    site = ('gateway_id = "gw-1"\n[[relays.devices]]\nid = "laundry"\ntype = "shelly"\n'
            'host = "192.168.1.50"\n{pw}\n')
    path = _secrets(tmp_path, 'laundry-shelly = "sh-pw"\n')
    cfg = secrets.resolve(parse_config(site.format(pw='password_secret = "laundry-shelly"')),
                          "site.toml", path)
    assert cfg.relays is not None and cfg.relays.devices[0].password == "sh-pw"
    literal = parse_config(site.format(pw='password = "sh-pw"'))
    assert cfg == literal
    assert secrets.literal_credentials(literal) == ["relays.devices[0].password"]


def test_password_and_its_name_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        parse_config(_site('password = "x"\npassword_secret = "mqtt"'))
