"""The [relays] table of the site file: every problem in one run, each with its line, the
relay profiles and channels checked by the gateway's drivers and the cloud's index alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sitegate.common.profile_index import shipped_quantities
from sitegate.common.sitecheck import ConfigError
from sitegate.common.sitefile import parse_config
from sitegate.gateway.profiles import driver_quantities

GOOD = """gateway_id = "gw"
[[buses]]
name = "rs485"
tcp = { host = "10.0.0.5", port = 502 }
[[relays.devices]]
id = "io"
type = "modbus"
bus = "rs485"
unit = 3
profile = "io_4relay_4di"
[[relays.devices]]
id = "sh"
type = "shelly"
host = "10.0.0.7"
password = "pw"
[[relays.readers]]
id = "r1"
type = "keyboard"
device = "/dev/input/by-id/usb-reader-event-kbd"
encoding = "decimal"
[[relays.points]]
id = "wash-1"
kind = "laundry"
reader = "r1"
device = "sh"
stop_below_w = 5
[[relays.points]]
id = "bike-1"
kind = "ebike"
device = "io"
channel = 2
"""

BAD = GOOD.replace('bus = "rs485"', 'bus = "mbus1"').replace(
    "channel = 2", "channel = 7").replace('device = "sh"', 'device = "shelly-9"') + """
[[relays.points]]
id = "wash-2"
kind = "laundry"
reader = "r1"
device = "io"
channel = 1
"""


@pytest.mark.parametrize("lookup", [driver_quantities, shipped_quantities])
def test_a_good_relays_table(lookup) -> None:  # type: ignore[no-untyped-def]
    cfg = parse_config(GOOD, "site.toml", lookup)
    assert cfg.relays is not None
    assert [p.id for p in cfg.relays.points] == ["wash-1", "bike-1"]
    assert cfg.relays.points[0].safe_state == "off"


@pytest.mark.parametrize("lookup", [driver_quantities, shipped_quantities])
def test_every_relay_problem_in_one_run_with_its_line(lookup) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, "site.toml", lookup)
    got = [(p.path, p.line) for p in info.value.problems]
    assert got == [("relays.devices[0].bus", 8), ("relays.points[0].device", 25),
                   ("relays.points[1].channel", 31), ("relays.points[2].reader", 36)]
    text = "; ".join(p.message for p in info.value.problems)
    assert "'mbus1' is not a Modbus bus" in text and "no channel 7 (channels: 1, 2, 3, 4)" \
        in text and "serves 'wash-1' already" in text


def test_point_named_like_a_charge_point_and_two_badge_lists() -> None:
    text = GOOD + ('[ocpp]\n[[ocpp.charge_points]]\nid = "wash-1"\nkind = "laundry"\n'
                   '[[relays.badges]]\nid = "04A23BC1"\n')
    with pytest.raises(ConfigError) as info:
        parse_config(text, "site.toml")
    msgs = [p.message for p in info.value.problems]
    assert any("id of an OCPP charge point" in m for m in msgs)
    assert any("put the badges in [[ocpp.badges]]" in m for m in msgs)


def test_check_config_cli(tmp_path: Path) -> None:
    f = tmp_path / "site.toml"
    f.write_text(BAD.replace('profile = "io_4relay_4di"', 'profile = "nope"'))
    r = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "check-config", str(f),
                        "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    problems = json.loads(r.stdout)["problems"]
    assert [(p["path"], p["line"]) for p in problems] == [
        ("relays.devices[0].bus", 8), ("relays.devices[0].profile", 10),
        ("relays.points[0].device", 25), ("relays.points[2].reader", 36)]
    assert problems[1]["message"].startswith("unknown relay profile 'nope'")


def test_a_desired_config_changing_the_relays_is_not_applied_live() -> None:
    """Points hold running sessions and open readers: [relays] is a fixed part, like [ocpp];
    the buses and meters of a desired config that leaves it as it is apply."""
    from sitegate.gateway.remote_config import fixed_changes

    running = parse_config(GOOD, "site.toml")
    same = parse_config(GOOD.replace("10.0.0.5", "10.0.0.6"), "desired")  # a bus moved
    other = parse_config(GOOD.replace("stop_below_w = 5", "stop_below_w = 8"), "desired")
    assert fixed_changes(running, same) == []
    assert fixed_changes(running, other) == ["relays"]
