"""The site-file checks in sitegate/common: every problem in one run, each with its line,
the same from the gateway's check-config, the cloud's push-config and a JSON desired config."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sitegate.common.profile_index import names, shipped_quantities
from sitegate.common.sitecheck import ProfileProblem
from sitegate.common.sitefile import ConfigError, parse_config, validate
from sitegate.gateway.profiles import driver_quantities

SITE = """\
gateway_id = "gw-1"
[storage]
path = "/tmp/x.db"
[[buses]]
name = "rs485-1"
serial = { port = "/dev/ttyUSB0" }
[[meters]]
id = "apt-1"
bus = "rs485-1"
unit = 1
profile = "eastron_sdm630"
[[meters]]
id = "apt-2"
bus = "rs485-1"
unit = 2
profile = "eastron_sdm630"
"""
# The file: a wrong bus name (line 9), unit 300 (line 15), an unknown profile (16).
THREE = (SITE.replace('bus = "rs485-1"\nunit = 1', 'bus = "rs458-1"\nunit = 1')
         .replace('unit = 2\nprofile = "eastron_sdm630"', 'unit = 300\nprofile = "eastron_nope"'))
EXPECTED = [("meters[0].bus", 9, "bus 'rs458-1' is not defined"),
            ("meters[1].unit", 15, "less than or equal to 247"),
            ("meters[1].profile", 16, "unknown Modbus profile 'eastron_nope'")]


def _matches(problems: list[tuple[str, int | None, str]]) -> None:
    assert len(problems) == len(EXPECTED), problems
    for (path, line, message), (want_path, want_line, words) in zip(problems, EXPECTED,
                                                                     strict=True):
        assert (path, line) == (want_path, want_line) and words in message, problems


def test_check_config_reports_every_problem_in_one_run_each_with_its_line(
        tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(THREE)
    run = [sys.executable, "-m", "sitegate.gateway.cli", "check-config", str(site)]
    res = subprocess.run([*run, "--json"], capture_output=True, text=True)
    assert res.returncode == 2, res.stdout + res.stderr
    _matches([(p["path"], p["line"], p["message"]) for p in json.loads(res.stdout)["problems"]])
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 2 and "3 problem(s)" in res.stdout
    assert "line 16: meters[1].profile: unknown Modbus profile" in res.stdout, res.stdout


def test_the_cloud_refuses_to_push_the_same_problems(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(THREE)
    # the checks come before any connection: no broker is needed to be refused
    res = subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", "push-config",
                          "--broker", "mqtt://127.0.0.1:9", "--gateway", "gw-1",
                          "--version", "1", str(site)], capture_output=True, text=True)
    assert res.returncode == 2, res.stdout + res.stderr
    for path, line, words in EXPECTED:
        assert f"line {line}: {path}: " in res.stdout and words in res.stdout, res.stdout


def test_a_json_desired_config_gets_every_problem_too() -> None:
    from sitegate.gateway.remote_config import parse_desired

    with pytest.raises(ConfigError) as exc:
        parse_desired(tomllib.loads(THREE), "config v3")
    # JSON has no lines; the paths and messages are those of the TOML form
    found = {p.path: p.message for p in exc.value.problems}
    _matches([(path, line, found.get(path, "")) for path, line, _ in EXPECTED])
    assert len(found) == len(exc.value.problems)
    assert [p.line for p in exc.value.problems] == [None, None, None]


def test_unknown_bus_and_profile_without_a_valid_model() -> None:
    """A profile is checked even when its meter's bus is unknown: it must exist somewhere."""
    text = SITE.replace('bus = "rs485-1"\nunit = 1\nprofile = "eastron_sdm630"',
                        'bus = "nope"\nunit = 1\nprofile = "nothing_like_it"')
    with pytest.raises(ConfigError) as exc:
        parse_config(text, profiles=shipped_quantities)
    assert [(p.path, p.line) for p in exc.value.problems] == [("meters[0].bus", 9),
                                                             ("meters[0].profile", 11)]
    assert "neither a Modbus nor an M-Bus profile" in exc.value.problems[1].message


def test_a_profile_of_the_other_protocol_is_refused() -> None:
    text = SITE.replace('"eastron_sdm630"\n[[meters]]', '"kamstrup_multical_601"\n[[meters]]')
    with pytest.raises(ConfigError) as exc:
        parse_config(text, profiles=driver_quantities)
    [problem] = exc.value.problems
    assert (problem.path, problem.line) == ("meters[0].profile", 11)
    assert "unknown Modbus profile 'kamstrup_multical_601'" in problem.message


@pytest.mark.parametrize("protocol", ["modbus", "mbus"])
def test_the_clouds_profile_index_agrees_with_the_drivers(protocol: str) -> None:
    """The cloud checks against the profiles as data; the gateway loads them: same answers."""
    assert names(protocol)
    for name in names(protocol):
        assert shipped_quantities(protocol, name) == driver_quantities(protocol, name), name
    for bad in ("nope", "../modbus/eastron_sdm630", "Eastron_SDM630"):
        with pytest.raises(ProfileProblem):
            shipped_quantities(protocol, bad)


def test_valid_data_gives_the_model_and_no_problem() -> None:
    cfg = validate(tomllib.loads(SITE), "x", profiles=shipped_quantities)
    assert [m.id for m in cfg.meters] == ["apt-1", "apt-2"]
