from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sitegate.common.sitefile import ConfigError, json_schema, parse_config

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
gateway_id = "gw-1"
[storage]
path = "/tmp/x.db"
[[buses]]
name = "rs485-1"
serial = { port = "/dev/ttyUSB0", baudrate = 9600, parity = "E" }
[[buses]]
name = "conv"
tcp = { host = "10.0.0.5", port = 502, framing = "rtu-over-tcp" }
[[meters]]
id = "apt-1"
bus = "rs485-1"
unit = 1
profile = "eastron_sdm630"
interval = 900
billing_point = "Apartment 1"
"""


def _line_of(text: str) -> int:
    return next(i for i, ln in enumerate(GOOD.splitlines(), 1) if ln.startswith(text))


def test_good_config_parses() -> None:
    cfg = parse_config(GOOD)
    assert cfg.meter("apt-1").unit == 1
    assert cfg.bus("conv").tcp is not None and cfg.bus("conv").tcp.framing == "rtu-over-tcp"


@pytest.mark.parametrize(
    ("change", "path", "line", "words"),
    [
        (("unit = 1", "unit = 300"), "meters[0].unit", "unit = 1", "less than or equal to 247"),
        (("interval = 900", "intervall = 900"), "meters[0].intervall", "interval = 900",
         "unknown key"),
        (('parity = "E"', 'parity = "X"'), "buses[0].serial.parity", "serial =",
         "'N', 'E' or 'O'"),
        (('bus = "rs485-1"', 'bus = "nope"'), "meters[0].bus", 'bus = "rs485-1"',
         "bus 'nope' is not defined"),
        (("unit = 1\n", ""), "meters[0]", "[[meters]]", "needs 'unit'"),
    ],
)
def test_errors_name_key_and_line(change, path, line, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD.replace(*change))
    problems = info.value.problems
    assert any(p.path == path and words in p.message for p in problems), problems
    if line is not None:
        assert [p.line for p in problems if p.path == path] == [_line_of(line)]


def test_toml_syntax_error_has_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD + "\n[[meters]\n")
    assert info.value.problems[0].line == len(GOOD.splitlines()) + 2


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("unit = 1", "unit = 300").replace("eastron_sdm630", "nope"))
    run = [sys.executable, "-m", "sitegate.gateway.cli", "check-config"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    res = subprocess.run([*run, str(bad), "--json"], capture_output=True, text=True)
    assert res.returncode == 2
    out = json.loads(res.stdout)
    first = out["problems"][0]
    assert first["path"] == "meters[0].unit" and first["line"] == _line_of("unit = 1")
    # an unknown profile is caught too, once the structure is valid
    bad.write_text(GOOD.replace("eastron_sdm630", "nope"))
    res = subprocess.run([*run, str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "unknown Modbus profile 'nope'" in res.stdout


def test_committed_schema_is_current() -> None:
    committed = json.loads((ROOT / "config" / "schema.json").read_text())
    assert committed == json_schema(), "run: sitegate schema > config/schema.json"


def test_examples_are_valid() -> None:
    # gateway site files; site-*.toml are the cloud billing site models
    examples = [p for p in sorted((ROOT / "config" / "examples").glob("*.toml"))
                if not p.name.startswith("site-")]
    assert examples
    run = [sys.executable, "-m", "sitegate.gateway.cli", "check-config"]
    for ex in examples:
        res = subprocess.run([*run, str(ex)], capture_output=True, text=True)
        assert res.returncode == 0, f"{ex.name}: {res.stdout}{res.stderr}"


MBUS = """
gateway_id = "gw-1"
[storage]
path = "/tmp/x.db"
[[buses]]
name = "mbus-usb"
protocol = "mbus"
serial = { port = "/dev/ttyUSB1" }
[[buses]]
name = "mbus-lan"
protocol = "mbus"
tcp = { host = "10.0.0.6" }
[[buses]]
name = "modbus-usb"
serial = { port = "/dev/ttyUSB0" }
[[meters]]
id = "heat-1"
bus = "mbus-usb"
address = 1
profile = "kamstrup_multical_601"
"""


def test_mbus_links_default_to_mbus_settings() -> None:
    cfg = parse_config(MBUS)
    usb, lan, modbus = cfg.bus("mbus-usb"), cfg.bus("mbus-lan"), cfg.bus("modbus-usb")
    assert usb.serial is not None and (usb.serial.baudrate, usb.serial.parity) == (2400, "E")
    assert lan.tcp is not None and lan.tcp.port == 10001
    assert modbus.serial is not None and (modbus.serial.baudrate, modbus.serial.parity) == (
        9600, "N")
    # what the installer wrote wins over the protocol's default
    cfg = parse_config(MBUS.replace('{ port = "/dev/ttyUSB1" }',
                                    '{ port = "/dev/ttyUSB1", baudrate = 9600, parity = "N" }'))
    ser = cfg.bus("mbus-usb").serial
    assert ser is not None and (ser.baudrate, ser.parity) == (9600, "N")


def test_check_config_catches_unknown_mbus_profile(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(MBUS)
    run = [sys.executable, "-m", "sitegate.gateway.cli", "check-config", str(site)]
    assert subprocess.run(run, capture_output=True, text=True).returncode == 0
    site.write_text(MBUS.replace("kamstrup_multical_601", "kamstrup_nope"))
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 2 and "unknown M-Bus profile 'kamstrup_nope'" in res.stdout, res.stdout


OCPP = GOOD + """
[ocpp]
port = 9000
security = { profile = 1 }

[[ocpp.charge_points]]
id = "garage-1"
password = "first-password"

[[ocpp.charge_points]]
id = "garage-2"
password = "second-password"

[[ocpp.charge_points]]
id = "garage-3"
password = "third-password"
max_current = 16

[ocpp.load_management]
enabled = true
main_meter = "apt-1"
"""


def _line_in(text: str, start: str, nth: int = 0) -> int:
    return [i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(start)][nth]


def test_errors_in_first_and_third_charge_point_have_their_lines() -> None:
    text = (OCPP.replace('password = "first-password"', "password = 1111")
            .replace('password = "third-password"', "password = 3333"))
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    found = {p.path: p.line for p in info.value.problems}
    assert found == {"ocpp.charge_points[0].password": _line_in(text, "password = 1111"),
                     "ocpp.charge_points[2].password": _line_in(text, "password = 3333")}
    # a missing key points at the header of its element; a table after the array is itself
    with pytest.raises(ConfigError) as info:
        parse_config(OCPP.replace('id = "garage-3"\n', "").replace("enabled = true",
                                                                   'enabled = "often"'))
    found = {p.path: p.line for p in info.value.problems}
    text = OCPP.replace('id = "garage-3"\n', "")
    assert found == {
        "ocpp.charge_points[2].id": _line_in(text, "[[ocpp.charge_points]]", 2),
        "ocpp.load_management.enabled": _line_in(text, "enabled = true"),
    }


NESTED = """\
[[a]]
x = 1
[[a.b]]
y = 1
[[a.b]]
y = 2
[[a]]
x = 2
doc = '''
y = "not a key"
'''
[[a.b]]
"quoted key" = 3
[a.c]
z.w = 1
[top]
"""


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("a", 0, "b", 1, "y"), 6),
        (("a", 1, "x"), 8),
        (("a", 1, "b", 0, "quoted key"), 13),
        (("a", 1, "b", 0, "missing"), 12),  # the element's header
        (("a", 1, "c", "z", "w"), 15),
        (("a", 1, "c", "z"), 15),
        (("a", 0, "b"), 3),
        (("top", "missing"), 16),
        (("nowhere",), None),
    ],
)
def test_find_line_in_nested_arrays_of_tables(loc: tuple[str | int, ...],
                                              line: int | None) -> None:
    from sitegate.common.sitefile import find_line

    assert find_line(NESTED, loc) == line


def test_main_meter_must_be_a_configured_meter() -> None:
    assert parse_config(OCPP).ocpp.load_management.main_meter == "apt-1"  # type: ignore[union-attr]
    text = OCPP.replace('main_meter = "apt-1"', 'main_meter = "mian"')
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    [problem] = info.value.problems
    assert problem.path == "ocpp.load_management.main_meter"
    assert problem.line == _line_in(text, 'main_meter = "mian"')
    assert problem.message == "meter 'mian' is not defined in [[meters]]; known: apt-1"


def test_check_config_main_meter_must_read_phase_currents(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    run = [sys.executable, "-m", "sitegate.gateway.cli", "check-config", str(site), "--json"]
    site.write_text(OCPP)
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # a single-phase meter has L1 current only
    site.write_text(OCPP.replace("eastron_sdm630", "eastron_sdm120"))
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 2, res.stdout + res.stderr
    [problem] = json.loads(res.stdout)["problems"]
    assert problem["path"] == "ocpp.load_management.main_meter"
    assert "does not read 1-0:51.7.0, 1-0:71.7.0" in problem["message"]
    # the same meter is fine as long as load management does not rely on it
    site.write_text(OCPP.replace("eastron_sdm630", "eastron_sdm120")
                    .replace('main_meter = "apt-1"\n', ""))
    assert subprocess.run(run, capture_output=True, text=True).returncode == 0


@pytest.mark.parametrize(("first", "second", "key"), [
    ('serial = { port = "/dev/ttyUSB0" }', 'serial = { port = "/dev/ttyUSB0", baudrate = 19200 }',
     "buses[1].serial.port"),
    ('tcp = { host = "10.0.0.5", port = 4001, framing = "rtu-over-tcp" }',
     'tcp = { host = "10.0.0.5", port = 4001, framing = "rtu-over-tcp" }', "buses[1].tcp"),
])
def test_two_buses_on_one_wire_are_refused(first: str, second: str, key: str) -> None:
    """Two bus workers on one half-duplex line would talk over each other's requests."""
    text = (f'gateway_id = "g"\n[[buses]]\nname = "a"\n{first}\n'
            f'[[buses]]\nname = "b"\n{second}\n')
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    (problem,) = exc.value.problems
    assert problem.path == key and "bus 'a'" in problem.message
    assert problem.line == 7  # the second bus's link
    # Another port, or Modbus TCP (MBAP: the device serves several clients), is fine.
    fine = (text.replace('"/dev/ttyUSB0", baud', '"/dev/ttyUSB1", baud') if "serial" in first
            else text.replace("rtu-over-tcp", "tcp"))
    assert len(parse_config(fine).buses) == 2


def test_check_config_warns_when_the_main_meter_is_read_too_seldom(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    run = [sys.executable, "-m", "sitegate.gateway.cli", "check-config", str(site), "--json"]

    def warnings(text: str) -> list[dict[str, Any]]:
        site.write_text(text)
        res = subprocess.run(run, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr  # a warning never refuses
        return json.loads(res.stdout)["warnings"]

    # apt-1 is read every 900 s, stale after the default 30 s: always on the fallback
    [w] = warnings(OCPP)
    assert w["path"] == "meters[0].interval" and w["line"] == _line_in(OCPP, "interval = 900")
    assert "always run the chargers on the fallback" in w["message"]
    [w] = warnings(OCPP.replace("interval = 900", "interval = 60")
                   .replace('main_meter = "apt-1"', 'main_meter = "apt-1"\nstale_after = 120'))
    assert w["path"] == "meters[0].interval"
    assert "reacts to an overload only at a reading" in w["message"]
    assert warnings(OCPP.replace("interval = 900", "interval = 2")) == []
    # no load management on it: nothing to warn about
    assert warnings(OCPP.replace('main_meter = "apt-1"\n', "")) == []
    # chargers without authentication
    [w] = warnings(OCPP.replace("interval = 900", "interval = 2")
                   .replace("profile = 1", "profile = 0"))
    assert w["path"] == "ocpp.security.profile" and "0 lets any charger" in w["message"]
